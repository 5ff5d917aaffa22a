"""The application: wires adapters, the bot and the scripts into the `chatbot` command.

The only package that imports all of them; bot/ never imports adapters or scripts.
"""
