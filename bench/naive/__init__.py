"""The naive baseline: what a typical Django developer writes for a chat (one ORM insert, core Redis layer).

Run with DJANGO_SETTINGS_MODULE=bench.naive.settings; `manage.py imbench` starts it beside ours.
"""
