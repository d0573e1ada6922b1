"""``python -m streams worker -l info --without-web``: the Faust CLI for streams.app."""

from streams.app import app


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
