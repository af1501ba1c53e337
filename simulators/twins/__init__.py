"""Device twins: simulated instruments that speak a real driver's wire protocol over a pty or TCP."""
