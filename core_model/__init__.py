"""Pure ML for the chat bot: text normalization, Okt tokens, vocabulary, seq2seq model.

Knows nothing of chat platforms or asyncio; `bot/` builds on it.
"""
