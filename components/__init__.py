"""One module per tab. Each exposes render() and wires only its own events."""
