"""One exception type for input a user can fix.

The UI turns it into a visible message (gr.Error) and the CLI into a one-line error;
anything else is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input with a message that tells the user what to change."""
