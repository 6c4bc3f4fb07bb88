function _ipsms_completion
    set -l items (env _IPSMS_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args _TYPER_COMPLETE_ARGS=(commandline -cp) ipsms)
    if test (count $items) -gt 0
        printf '%s\n' $items
    else
        __fish_complete_path (commandline -ct)
    end
end
complete --command ipsms --no-files --arguments '(_ipsms_completion)'

