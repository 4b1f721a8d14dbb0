"""The segment definitions the segments issue gives as a public contract, word for word."""

EXAMPLE_SEGMENTS = """
segments:
  - name: vip
    notify: true
    rule:
      all:
        - computed.revenue: {gte: 500}
        - performed: {event: Order Completed, at_least: 2, within: 90d}
  - name: lapsed_shoe_buyers
    rule:
      all:
        - performed: {event: Order Completed, where: {properties.category: shoes}, at_least: 1}
        - not: {performed: {event: Order Completed, within: 60d}}
"""
