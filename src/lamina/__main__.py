from lamina.cli.app import main

main()
