"""Transaction-stream simulator (the handbook's generative model plus card testing).

It writes files and talks to the service over HTTP (`simulator.replay`); it never imports the
service's code.
"""
