"""Chats through the active model: prepare the call, call the provider, record it (assist)."""
