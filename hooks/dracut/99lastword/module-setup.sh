#!/bin/bash
# dracut module "lastword": a capture initramfs whose init is lastword, for kdumpctl/mkdumprd
# (`dracut --add lastword`, or `dracut_args --add lastword` in /etc/kdump.conf).
# Like 99kdumpbase, check() accepts only when IN_KDUMP is set, so the module is never pulled into
# a normal boot image. install() asks lastword itself for the files (lastword initramfs --into):
# the same module selection, blacklists, configs, SSH key and known_hosts as `lastword initramfs`.
# The module sorts after 99base and 99kdumpbase, so its /init replaces theirs.
# Extra builder options (e.g. --config FILE): LASTWORD_INITRAMFS_ARGS in the environment.

# called by dracut
check() {
    [[ $IN_KDUMP ]] || return 1
    require_binaries "${LASTWORD:-lastword}" || return 1
    return 0
}

# called by dracut: lastword is the whole userland; it needs no other dracut module.
depends() {
    return 0
}

# called by dracut
install() {
    local lastword
    lastword=$(command -v "${LASTWORD:-lastword}") || { derror "lastword: ${LASTWORD:-lastword} not found"; return 1; }
    # dracut strips every executable file in the image by default (kdumpctl even adds
    # --aggressive-strip). strip rewrites the lastword executable's segments and the result
    # segfaults (its embedded application is outside the sections strip keeps), so stripping is
    # turned off for this image. install() runs inside dracut's shell, where do_strip is read later.
    # shellcheck disable=SC2034 # read by dracut
    do_strip=no
    # shellcheck disable=SC2086 # LASTWORD_INITRAMFS_ARGS is a list of words
    "$lastword" initramfs --kernel "$kernel" --into "$initdir" $LASTWORD_INITRAMFS_ARGS \
        || { derror "lastword initramfs failed"; return 1; }
}
