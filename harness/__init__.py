"""What the tests and the benchmarks both drive: the scripted OpenAI/Anthropic-compatible upstream
(`upstream`), a real valkey-server (`valkey`), and running hive-mcp as a child process (`processes`).
Neither `tests/` nor `bench/` imports the other; both import this."""
