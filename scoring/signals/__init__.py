"""Measures declared over signals: traits, usage metrics, surveys, tickets, CSM calls.

`spec` holds the signal kinds a scorecard can name (the configuration); `usage` and
`account` hold their set-based queries; `read` dispatches one signal to its query;
`catalog` lists what the store holds, so a scorecard naming an unknown metric or trait is
told which names exist.
"""
