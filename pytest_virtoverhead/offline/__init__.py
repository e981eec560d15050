"""The offline commands of ``pytest-virtoverhead``: compare two saved runs, the history of many (Markdown and HTML), merge CI shards."""
