"""The command-line layer: typer commands that turn options into core calls."""
