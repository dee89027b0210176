"""The peers that ``bench/peers.py`` measures taskorch against: one module per peer."""
