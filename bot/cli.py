"""Deprecated spelling of the `chatbot` command: `python -m bot.cli ...` runs `python -m chatbot ...`.

The command lives in chatbot/cli.py (the application package; bot/ imports neither adapters nor
scripts). This forwarder imports nothing itself and stays only until tests/test_scripts.py calls
`python -m chatbot`; delete it then.
"""
if __name__ == "__main__":
    import runpy

    runpy.run_module("chatbot.cli", run_name="__main__", alter_sys=True)
