"""Entry point for `python app.py` and Hugging Face Spaces: build the studio and launch it."""
from studio.ui.app import main

if __name__ == "__main__":
    main()
