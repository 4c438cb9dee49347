"""What several test modules share: data and recipe makers, trained-looking runs and adapters,
stand-ins for Ollama and the Hub, the bad-input corpus, and the fixtures registered for every test
in tests/conftest.py. Test modules import from here, never from each other; bench/ may import the
stand-ins too."""
