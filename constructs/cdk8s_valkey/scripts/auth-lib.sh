# shellcheck shell=sh
# Sourced by requirepass.sh (Valkey) and sentinel-start.sh (Sentinel) when AUTH is on: quote a
# password for a valkey.conf / sentinel.conf line. Defines functions only.
#
# Builtins only: the password is never an argument of another program (/proc/<pid>/cmdline is
# readable by every user of the node), and never printed.
# The variables these functions set are read by the callers, which shellcheck cannot see here:
# shellcheck disable=SC2034

# replace_all VALUE CHAR REPLACEMENT: VALUE with every CHAR replaced, in `replaced`.
replace_all() {
    rest=$1
    replaced=
    while :; do
        case $rest in
            *"$2"*)
                replaced=$replaced${rest%%"$2"*}$3
                rest=${rest#*"$2"}
                ;;
            *)
                replaced=$replaced$rest
                return 0
                ;;
        esac
    done
}

# conf_quote VALUE: VALUE as the inside of a double-quoted config argument, in `quoted`.
# Config quoting: inside double quotes, \\ \" \n \r are escapes and every other byte is taken as
# it is (spaces, ' and $ included). Backslashes first, so that no escape we add is escaped again.
# A raw newline would end the config line: it becomes \n.
conf_quote() {
    nl='
'
    cr=$(printf '\r')
    replace_all "$1" "\\" "\\\\"
    replace_all "$replaced" '"' "\\\""
    replace_all "$replaced" "$nl" "\\n"
    replace_all "$replaced" "$cr" "\\r"
    quoted=$replaced
}
