"""The customer portal's pure logic: local-time usage buckets, comparisons, bill projection,
alert episodes. No database, no HTTP."""
