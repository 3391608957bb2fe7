from gptrelay.cli.main import main

main()
