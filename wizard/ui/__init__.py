"""The Textual parts the step screens are built of: the base screen and its nav widgets (base), the
Model step (model). Both the app (wizard.app) and the other screens (wizard.screens) import them,
so neither imports the other."""
