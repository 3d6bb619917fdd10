"""Benchmarks that print figures beside a peer (kubectl, OpenSSH); they assert nothing."""
