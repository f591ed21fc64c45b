"""Engine implementations; each module imports its heavy dependency only when used."""
