#!/bin/sh
# Baked into the test guest image as /usr/local/sbin/ebpf-nb-vmtest and started at boot when the
# kernel command line has ebpfnb.test=PHASE: mounts the repository (read-only) and the result
# directory shared by QEMU (9p), runs tests/vm/guest_run.sh PHASE, records its exit status, and
# powers the guest off so that QEMU exits.
phase=$(sed -n 's/.*ebpfnb\.test=\([^ ]*\).*/\1/p' /proc/cmdline)
mkdir -p /mnt/repo /mnt/out
mount -t 9p -o trans=virtio,version=9p2000.L,ro repo /mnt/repo
mount -t 9p -o trans=virtio,version=9p2000.L out /mnt/out
echo "ebpf-nb-vmtest: phase $phase starting" > /dev/console
bash /mnt/repo/tests/vm/guest_run.sh "$phase" > "/mnt/out/phase$phase.log" 2>&1
echo $? > "/mnt/out/phase$phase.rc"
echo "ebpf-nb-vmtest: phase $phase done, rc $(cat "/mnt/out/phase$phase.rc")" > /dev/console
sync
umount /mnt/out
systemctl poweroff
