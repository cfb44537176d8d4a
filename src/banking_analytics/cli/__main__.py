from banking_analytics.cli import main

main()
