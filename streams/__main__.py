"""``python -m streams worker -l info --without-web``: the Faust CLI for streams.worker.app."""

from streams.worker.app import app


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
