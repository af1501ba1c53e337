"""Surrogates behind the templates of `examples/`: stand-ins for published self-driving labs, each shaped after its
paper and stated as a surrogate, not the real system."""
