"""Generation (thesis 2.4): sample portraits from the user's model; styles, formats, ControlNet, face swap."""
