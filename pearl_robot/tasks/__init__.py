"""Tasks and task families."""
