"""Test doubles that speak real wire protocols; stored workflows and the CLI as a user runs it."""
