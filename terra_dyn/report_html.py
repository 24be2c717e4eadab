"""Placeholder, replaced below."""
def render_html(report):
    return "<html></html>"
