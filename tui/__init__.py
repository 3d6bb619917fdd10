"""nodewb's terminal UI and command line (the only package that imports textual)."""
