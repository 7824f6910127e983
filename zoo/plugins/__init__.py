"""Plugin hook specs and discovery (pluggy project name `zoo`, entry-point group `zoo`)."""
