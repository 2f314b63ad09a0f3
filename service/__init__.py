"""Running session-syncd as a per-user background service (systemd user unit or launchd LaunchAgent).

spec: what the service needs (paths, env) · systemd, launchd: pure rendering + plans · plan: executes or
prints plans · commands: `session-syncd service …` · notify: sd_notify and the trio watchdog task.
"""
