"""Test doubles that speak real wire protocols, and stored workflows for runtime tests."""
