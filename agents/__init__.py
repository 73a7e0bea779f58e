"""faust agents, one per module, wired into the app by autodiscover."""
