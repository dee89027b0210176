"""Durability tests: real ``taskorch worker`` subprocesses killed, restarted and cut off."""
