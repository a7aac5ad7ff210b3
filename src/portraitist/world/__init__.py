"""A synthetic world of procedurally drawn people, where likeness can be measured exactly (issue 9)."""
