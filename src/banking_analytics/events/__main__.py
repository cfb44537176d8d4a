from banking_analytics.events._reference import render_reference

print(render_reference(), end="")
