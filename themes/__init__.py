"""Theme files (data): loaded by tui.themes."""
