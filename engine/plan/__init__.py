"""Loading: the workspace, labels, and the plan of a build."""
