from sitepulse.cli.main import main

main()
