# Sourced by test-js.sh and test-firefox.sh: splits "[packages...] [go test flags...]" into
# pkgs and flags, and with no packages picks every package that has a js && wasm test file.
# Flags whose value may follow as the next word (-run WebGPU): that word is not a package.
# The scripts pass packages first: go test takes flags it does not know (-nibble.f16=on) as the
# test binary's, and a package list after one of those would be lost.
value_flags=" run skip bench benchtime count cpu parallel timeout p list shuffle tags
  coverprofile coverpkg covermode cpuprofile memprofile blockprofile mutexprofile trace outputdir
  o fuzz fuzztime fuzzminimizetime ldflags gcflags asmflags mod modfile overlay pkgdir "
pkgs=() flags=()
while (($#)); do
  a=$1; shift
  case $a in
    -*=*) flags+=("$a") ;;
    -*) flags+=("$a")
        name=${a#-}; name=${name#-}; name=${name#test.}
        if [[ $value_flags == *" $name "* && $# -gt 0 ]]; then flags+=("$1"); shift; fi ;;
    *) pkgs+=("$a") ;;
  esac
done
if [[ ${#pkgs[@]} -eq 0 ]]; then
  mapfile -t pkgs < <(grep -rlE '^//go:build [^!]*\bjs\b' --include='*_test.go' wasm tools shaders site 2>/dev/null | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
fi
