"""Entry point for `python app.py` and Hugging Face Spaces: build the studio and launch it."""
from studio.app import build_app, launch_kwargs

if __name__ == "__main__":
    build_app().queue(default_concurrency_limit=1).launch(**launch_kwargs())
