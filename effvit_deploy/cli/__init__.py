"""Thin typer front ends: parse, call the library, print. No logic the library cannot do without them."""
