from banking_analytics.metrics._reference import render_reference

print(render_reference(), end="")
