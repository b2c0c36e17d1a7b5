# isolab's generated text, English (the source). Every sentence, label and figure text isolab
# writes into the book and the reports comes from here; fr.ftl translates it, quoting above each
# message the English it was made from (`# en: ...`), so a changed English text shows up as fuzzy.
# Numbers arrive already formatted for the language; do not format them again.

## Values the run lacks

not-measured = not measured in this run
missing-value = *{ not-measured } ({ $why })*
why-workload-absent = the { $workload } workload was not part of this run
why-unavailable = { $backend } unavailable: { $reason }
why-unavailable-here = { $backend } unavailable on this host
why-no-trial-stored = no measured trial of { $entry } on { $backend } was stored; the run may have been interrupted
why-backend-absent = the { $backend } backend was not part of this run
why-all-failed = all { $n } trials of { $entry } on { $backend } failed: { $reason }
why-emulated-only = { $backend } ran only inside an emulated machine, whose times are not performance figures
why-metric-absent = { $backend } does not report { $metric } for { $entry }
why-no-usable-trial = { $backend } has no usable { $entry } trial
why-no-fact = the run's manifest records no { $key } for { $backend }; runs made before isolab recorded it lack it

## Medians and ratios

median-ci = { $median }{ $unit } [{ $level } CI { $lo }–{ $hi }], n={ $n }{ $suffix }
median-range = { $median }{ $unit } [range { $lo }–{ $hi }, { $coverage } coverage: too few trials for { $level }], n={ $n }{ $suffix }
median-other-run = { " " }(run { $run }, with other parameters than native's)
median-counted-emulated = { " " }(counted in an emulated machine: a count, not a speed){ $other }
ratio-native = { $ratio } native [{ $level } CI { $lo }–{ $hi }{ $aa }]
ratio-aa-note = ; A/A noise { $pct }
ratio-other-run = *no ratio: the VM's { $entry } comes from run { $run }, measured with other parameters than native's (chapter 9 lists both)*
ratio-no-native = *{ not-measured } (no ratio: { $why })*

## The runs and the backends

runs-one = one run of `isolab run`, run **{ $run }**
runs-two = two runs of `isolab run`: run **{ $base }** ({ $base-role }) and run **{ $vm }** ({ $vm-role }), each with its own suite, sizes and repetitions ([chapter 9]({ $url }) describes both)
no-backend = no backend
avail-absent = **{ $backend }**: not part of this run
avail-unavailable = **{ $backend }**: unavailable: { $reason }
avail-no-reason = no reason recorded
avail-measured = **{ $backend }**: measured
avail-emulated = **{ $backend }**: ran only inside an emulated machine: its counts and its view of the inside are shown, its times are not
avail-failed = **{ $backend }**: no successful measured trial
avail-from-run = { " " }(from run { $run })
manifest-run-column = run { $run } ({ $role })

## Start-up phases

phases-header = | # | phase ends at | median duration | cumulative | what happened |
phases-footer = Medians of { $n } `noop` trials of { $backend } on the host clock (the segments' medians add up to the median *path*, not to the median total).
phase-vm-vm_created = `KVM_CREATE_VM`: an empty virtual machine, no memory, no CPU yet
phase-vm-memory_ready = guest RAM mapped in the VMM and handed to KVM (`KVM_SET_USER_MEMORY_REGION`)
phase-vm-kernel_loaded = kernel, initramfs, command line, boot parameters, page tables and MP table written into guest RAM
phase-vm-vcpu_configured = vCPU created; registers, CPUID, MSRs set; serial port wired to an irqfd
phase-vm-first_kvm_run = the vCPU thread enters the guest for the first time (`KVM_RUN`)
phase-vm-agent_ready = the guest kernel booted and ran `/init`: the agent's first marker (a port write, one exit)
phase-vm-exited = the guest asked to stop (power-off or reset)
phase-vm-cleaned_up = vCPU, devices, VM and guest memory released
phase-container-cgroup_created = the trial's cgroup exists, with its memory, CPU and pids limits
phase-container-clone_returned = `clone3` with new namespaces returned in the parent
phase-container-child_started = the child's first instruction, already inside its new namespaces
phase-container-cgroup_joined = the child is accounted to its cgroup
phase-container-namespaces_ready = hostname set, loopback up, cgroup namespace entered
phase-container-root_pivoted = root in place: the container's own copy of the mount namespace prepared once per run (the read-only root filesystem as `/`, none of the host's mounts; rootless: `pivot_root` per container), then /proc, /sys, /tmp and the masks mounted
phase-container-exec = capabilities dropped; `execve` of the agent as PID 1
phase-container-exited = PID 1 ended, and with it every process in the PID namespace
phase-container-cleaned_up = the cgroup removed; nothing of the container is left
phase-any-spawned = `fork`/`exec` of the agent returned in the harness
phase-any-agent_ready = the agent runs: its first marker arrived
phase-any-workload_start = the workload begins
phase-any-workload_end = the workload ends
phase-any-result_written = the result is written
phase-any-exited = the agent ended
phase-any-reaped = the exit status was collected
phase-any-cleaned_up = everything of the trial is released

## VM exits

exit-io_out-serial = a write to the emulated serial port: one exit per byte of console output
exit-io_in-serial = a read of a serial-port register (the driver polls its status)
exit-marker = the agent's timing marker: one port write per event
exit-rtc = the CMOS real-time clock, read at boot
exit-i8042 = the keyboard controller, probed at boot and used to reset
exit-port-other = a port with no device behind it: the kernel probing for hardware
exit-mmio = an access to an address with no RAM (memory-mapped I/O)
exit-hlt = the vCPU halted
exit-shutdown = triple fault: the guest could not continue
exit-system_event = the guest asked to power off or reset
exit-intr = KVM returned to the VMM for a signal or an interrupt window
exit-error = KVM could not enter or emulate: an error

## Capacity

capacity-how-vm = guest RAM touched + VMM
capacity-how-cgroup = cgroup peak
capacity-how-rss = peak RSS

## The terminal report

term-run-line = Run { $run } ({ $status }) started { $started } on { $host } ({ $cpu }, { $cores } cores, kernel { $kernel }, KVM: { $kvm }).
term-methodology = Methodology:
term-caveats = Caveats:
summary-col-workload = workload
summary-col-metric = metric
summary-col-backend = backend
summary-col-median = median
summary-col-ci = 95% CI
summary-col-n = n
summary-col-vs-native = vs native

## VM exits table

exits-header = | exit reason | median per trial | what it is |
exits-total = **all exits**
exits-emulated = Counted by a VM that ran inside an emulated machine: the counts are what the guest did; the times are not measured.

## Figures

figure-label = Figure `{ $name }`

## Methodology (the paragraph every report and the book print)

list-none = none
list-and = { $rest } and { $last }
count-trials = { $n ->
    [one] { $count } trial
   *[other] { $count } trials
}
count-workloads = { $n ->
    [one] { $count } workload
   *[other] { $count } workloads
}
count-repetitions = { $n ->
    [one] { $count } repetition
   *[other] { $count } repetitions
}
count-warmup-rounds = { $n ->
    [one] { $count } warm-up round
   *[other] { $count } warm-up rounds
}
count-warmup-samples = { $n ->
    [one] { $count } warm-up sample
   *[other] { $count } warm-up samples
}
count-cpus = { $n ->
    [one] { $count } CPU
   *[other] { $count } CPUs
}
count-cores = { $n ->
    [one] { $count } core
   *[other] { $count } cores
}
method-trials = Run { $run } measured { $trials } of { $workloads } on { $backends } ({ $reps } planned per column and workload{ $until }), after { $warmup } per column and workload ({ $warmup-samples } stored but not summarised).
method-more-until-ci = , more where --until-ci asked for them
method-outcomes = { $ok } produced a result that enters the statistics; { $failed } failed and { $emulated } ran in an emulated machine (both are listed, neither is summarised as performance).
method-shuffle = In every repetition each workload ran once per column (a backend with its factor values), the columns in an order shuffled anew (seed { $seed }), so slow drift of the host falls on all columns alike.
method-until-ci = Repetitions were added by rule (--until-ci { $pct }): rounds of one more repetition of every column, interleaved, for each workload with a headline interval reaching further than that from its median, up to { $max-reps } repetitions and { $max-wall }; { $rounds } round(s) were added and the rule { $outcome }.
method-until-met = was met
method-until-not-met = was not met everywhere ({ $why })
method-aa = As an A/A check, column { $column } ran twice as if it were two ({ $a } and { $b }), interleaved like the others; their ratio shows the smallest difference this host resolved during the run.
method-statistics = Each figure is the median of its samples with a distribution-free { $level } confidence interval from order statistics (binomial ranks; no normality is assumed; with fewer than 6 samples { $level } is out of reach and min..max is given with its actual coverage). Ratios to native are median(backend) / median(native) with a { $level } percentile-bootstrap interval ({ $resamples } resamples, fixed seed, so every number can be recomputed from samples.jsonl).
method-sandbox = Sandbox size: { $memory } of memory and { $cpus } for container and VM alike. Host: { $host } ({ $cpu-model }, { $cores }, { $host-memory }), kernel { $kernel }, { $kvm }, cgroups { $cgroups }.
status-running = running or killed
status-complete = complete
status-interrupted = interrupted
status-failed = stopped by an error
stop-running = still running or killed
stop-converged = every headline interval met the rule
stop-repetition-cap = stopped at the repetition cap
stop-wall-cap = stopped at the wall-clock cap
stop-interrupted = interrupted by Ctrl-C
kvm-intel = hardware KVM (kvm_intel, VT-x)
kvm-amd = hardware KVM (kvm_amd, AMD-V)
kvm-pvm = PVM (kvm_pvm): software virtualization, cannot boot stock Linux guests
kvm-unknown = /dev/kvm present, provider unknown
kvm-none = no /dev/kvm

## Caveats

caveat-partial = Partial run: status { $status }, { $stored } of { $planned } planned trials stored. The figures use the samples that exist; some backends or workloads may have fewer repetitions than planned.
caveat-torn-tail = The last line of samples.jsonl was incomplete (the run was killed while writing it) and was skipped.
caveat-no-trial-stored = no trial of it was stored
caveat-backend-no-samples = Backend { $backend } has no samples in this run: { $why }.
caveat-backend-no-success = Backend { $backend } produced no successful measured trial; it appears only in the failure list.
caveat-emulated = { $n ->
    [one] { $count } sample ran the VM inside an emulated machine (no hardware virtualization). It is labelled "vm (emulated)", has no ratio to native, and is left out of the timing charts: it shows that the VM works and what it counts (memory, exits), not how fast it is.
   *[other] { $count } samples ran the VM inside an emulated machine (no hardware virtualization). They are labelled "vm (emulated)", have no ratio to native, and are left out of the timing charts: they show that the VM works and what it counts (memory, exits), not how fast it is.
}
caveat-few-samples = Some figures rest on fewer than 6 samples: their interval is min..max and covers the median with less than { $level } probability (marked *).
caveat-column-not-run = Column { $column } did not run: { $why }.
caveat-wide = { $wide } of { $total } headline intervals reach further than { $pct } from their median (marked ~); differences smaller than that are not resolved by them.
caveat-aa-floor = The A/A check of this run puts the noise floor at { $pct }: a ratio closer to 1 than that (a factor's effect, or a backend against native) cannot be told from noise here.
caveat-failures = { $n ->
    [one] { $backend }: { $count } trial ({ $workloads }) produced no result: { $reason }.
   *[other] { $backend }: { $count } trials ({ $workloads }) produced no result: { $reason }.
}
caveat-failures-not-run = { $n ->
    [one] { $backend }: { $count } trial ({ $workloads }) not run: { $reason }.
   *[other] { $backend }: { $count } trials ({ $workloads }) not run: { $reason }.
}

## The environment (manifest) tables

env-run = run
env-status = status
env-started = started
env-ended = ended
env-wall-time = wall time
env-host = host
env-kernel = kernel
env-cpu = CPU
env-cpu-value = { $model } ({ $cores } cores)
env-memory = memory
env-governor = CPU governor
env-not-readable = not readable
env-boot-id = host boot_id
env-agent-sha = agent sha256
env-suite = suite
env-reps = repetitions / warm-up
env-sandbox = sandbox
env-sandbox-value = { $memory }, { $vcpus } vCPU, { $pids } pids
env-seed = shuffle seed
env-columns = columns
env-one-per-backend = one per backend
env-trials = trials stored / planned
env-command = command
env-until-ci = { $pct } (caps { $max-reps } repetitions, { $max-wall }): { $rounds } round(s) added, { $why }
env-available = available
env-unavailable = unavailable
env-backend = backend { $backend }
env-platform = platform
env-platform-not-recorded = not recorded (the run was made by an isolab that did not record microcode, mitigations, boost, SMT, NUMA, THP, KSM or the kernel command line)
env-not-exposed = not exposed by this host
env-active = active
env-inactive = inactive
env-numa-node = node { $node }: CPUs { $cpus }
env-ksm-stopped = stopped
env-ksm-merging = merging
env-ksm-unmerging = unmerging
env-ksm-pages-per-scan = { $n } pages per scan
env-ksm-sleep = { $ms } ms between scans
env-ksm-sharing = { $n } pages sharing at the start
env-cpu-signature = CPU signature
env-microcode = microcode
env-vulnerabilities = CPU vulnerabilities
env-cpufreq = cpufreq driver
env-numa = NUMA nodes
env-thp = transparent huge pages
env-thp-value = enabled { $enabled }, defrag { $defrag }
env-clocksource = clock source
env-kernel-build = kernel build
env-cmdline = kernel command line
caveat-vm-run-incomplete = The VM's run { $run } did not complete ({ $status }): its figures use the samples that exist.

## The summary table (terminal)

summary-col-unit = unit
summary-no-trials = (no successful measured trials)
summary-footer = { $measured } measured samples ({ $warmup } warm-up samples not summarised). Intervals: median, distribution-free order-statistic CI; ratio: percentile bootstrap ({ $resamples } resamples). ↑ higher is better, ↓ lower.
summary-low-coverage = * fewer than 6 samples: 95% is out of reach; the interval is min..max with lower coverage.
summary-wide = ~ the interval reaches further than { $pct } from its median.
summary-emulated = Emulated samples ran in the HVM test machine (QEMU TCG): correctness only, not performance.
emulated-time = emulated time

## The HTML report

html-title = isolab report: { $run }
html-heading = isolab report: run { $run }
html-run-line = { $started } on { $host } (kernel { $kernel }, { $kvm }), { $stored } of { $planned } planned trials stored, status: { $status }.
html-legend = Backends in this run (same colours in every chart): { $backends }
html-read-first = Read this first.
html-charts = Charts
html-summary = Summary
html-failed = Failed trials
html-failed-note = One row per backend and reason (every trial: { $command }).
html-col-trials = trials
html-col-how-many = how many
html-col-workloads = workloads
html-col-reason = reason
html-methodology = Methodology
html-environment = Environment
html-footer = Every number here is recomputed from samples.jsonl and manifest.json of run { $run } by { $command }; the raw samples are in the CSV report.
html-no-trial = No successful measured trial in this run.
html-col-vs-native = vs native [95% CI]
html-summary-note = ↑ higher is better, ↓ lower is better; * fewer than 6 samples, the interval is min..max; ~ the interval reaches further than { $pct } from its median.
caption-start_timeline = Where start-up time goes: each bar is one trial of the noop workload on the host clock, split at the phases the backend records; segment lengths are medians across trials, so the bar is the median path, not the median total.
caption-ratio_to_native = Each dot is a backend's median divided by native's median for the same metric; the whisker is its bootstrap confidence interval. At 1 (the black line) the backend is as fast as native; whether above 1 is better depends on the arrow in the label.
caption-factor_effects = Each dot is one factor's effect on a headline metric: the median at the changed value divided by the median at the factor's first value, the other factors held fixed, measured side by side in this run; the whisker is its bootstrap interval. At 1 the setting made no difference that the run could see.
caption-aa_check = The same column run twice as if it were two, interleaved: any distance of a dot or its whisker from 1 is noise. Effects and ratios closer to 1 than these whiskers reach cannot be told from noise on this host.
caption-io_latency = Latency percentiles reported by the I/O workloads (p50 = typical, p99 = tail), median across trials with its confidence interval.
caption-vm_exits = How often the guest left the CPU to the VMM in one trial, by reason. Port and MMIO exits are emulated device accesses; virtio keeps them few.

## The book's figures: captions, the figure line, and the chart titles as text alternatives

figure-line = *Figure `{ $name }`, from run { $run }.* { $caption }
figure-caption-start-timeline = Each bar is one start of a sandbox that runs the `noop` program, on the host's clock, from the moment the harness begins to the moment everything is cleaned up. Segments are the phases the backend records, each the median across trials. The black tick and whisker are the median time from start to ready and its 95% interval, the figure the text quotes, with the same n; the label repeats them.
figure-caption-vm-boot-timeline = The microVM's start, phase by phase: creating the VM, its memory, loading the kernel, configuring the vCPU, then the guest kernel's own boot until the agent's first marker, the workload, power-off and teardown. Segment lengths are medians across trials.
figure-caption-container-start-timeline = The container's start, phase by phase: cgroup, clone with new namespaces, joining the cgroup, setting up the namespaces, the root filesystem (a copy of a mount namespace prepared once per run), exec of the agent, then the workload, exit and cleanup. Segment lengths are medians across trials.
figure-caption-cpu-memory-ratio = Each dot is a backend's median divided by native's median for the same metric; the whisker is its 95% bootstrap interval. On the black line (1) the backend is exactly as fast as native. The arrow after each label says whether higher (↑) or lower (↓) is better, so a dot right of the line is worse for ↓ metrics and better for ↑ ones.
figure-caption-emulation-ratio = The same CPU and memory workloads, the same sizes, in one run: each dot is a backend's median divided by native's, with its 95% bootstrap interval, on a log scale. The container and the VM sit near 1; the emulator (QEMU without acceleration, `qemu-tcg`) sits one to two orders of magnitude away, because every guest instruction is first translated by software.
figure-caption-io-ratio = Storage and loopback network metrics as ratio to native, read like the CPU figure: 1 is native, whiskers are 95% intervals, the arrow says which direction is better.
figure-caption-io-latency = Latency of single I/O operations: p50 is the typical operation, p99 the slowest one in a hundred. Bars are medians across trials, whiskers their 95% intervals; shorter is better.
figure-caption-vm-exits = How many times per trial the guest stopped and handed the CPU to the VMM, by reason. Every `io_out.serial` is one byte of console output written to an emulated serial port.
figure-caption-vm-exits-per-op = VM exits per operation of each workload, while the workload ran: per 4 KiB random read and write, per MiB written and read, per system call, per page fault. Each bar is split by why the guest left: the **device** part (port and MMIO accesses that reached the VMM, and virtio queue notifications KVM completed through an ioeventfd) follows from the driver's protocol and is the same on any host; the **time-driven** part (timer and other interrupts, halts, interrupt windows) grows with how long the workload took, so a slow or emulated run counts far more of it than hardware would; the rest is mostly nested-page faults that KVM handled itself. A run from before isolab split exits by cause shows where they were handled instead (inside KVM, or in the VMM).
figure-caption-factor-effects = Each dot is what changing one setting did to a headline metric, the other settings held fixed: the median at the new value divided by the median at the first, both measured side by side in one run, interleaved. The whisker is its 95% bootstrap interval; at 1 the setting made no difference the run could see.
figure-caption-aa-check = The same configuration run twice as if it were two, interleaved (an A/A check). Nothing differs between the two, so how far a whisker reaches from 1 is the smallest difference this host could resolve during the run: read every other ratio against it.
figure-title-start-timeline = Start-up of one noop trial, by phase (medians across trials)
figure-title-vm-boot-timeline = Booting the microVM: phases of one noop trial (medians across trials)
figure-title-container-start-timeline = Starting a container: phases of one noop trial (medians across trials)
figure-title-cpu-memory-ratio = CPU, memory and kernel entry: each metric as ratio to native (95% intervals)
figure-title-emulation-ratio = Container, VM and the emulator (QEMU TCG) against native: CPU and memory (95% intervals)
figure-title-io-ratio = Storage and network: each metric as ratio to native (95% intervals)
figure-title-io-latency = I/O latency: p50 and p99 per backend (medians across trials, 95% intervals)
figure-title-vm-exits = VM exits per trial, by reason
figure-title-vm-exits-per-op = VM exits per operation, by cause
figure-title-factor-effects = The effect of each varied setting on the headline metrics (95% intervals)
figure-title-aa-check = A/A check: the same column twice, A'/A (95% intervals)
figure-no-emulator = the run has no qemu-tcg trial (`isolab run --backend native,container,vm,qemu-tcg`)

## What the inspect workload saw (chapter 4)

inspect-what = what the program sees
inspect-kernel = kernel release (`uname -r`)
inspect-boot-id = boot_id
inspect-pid = its own PID
inspect-processes = processes it can see (`/proc`)
inspect-hostname = hostname
inspect-interfaces = network interfaces
inspect-mounts = mounts
inspect-cpus = CPUs it may run on
inspect-memory = memory it is told about (MemTotal)
inspect-cgroup = its cgroup (`/proc/self/cgroup`)
inspect-same-kernel = same kernel as the host? (boot_id equal)
yes = yes
no = no

## The workbook's answer keys

answer-kernel = **{ $backend }** runs on kernel `{ $release }` with boot_id `{ $boot-id }`; the host's kernel is `{ $host-kernel }` with boot_id `{ $host-boot-id }`: { $verdict }
answer-kernel-shared = **the same kernel as the host** (a view, not a machine)
answer-kernel-own = **a kernel of its own** (it booted its own)
answer-pid = the program is PID { $pid } and sees { $processes } process(es); its network interfaces: { $interfaces }
answer-resources = it may run on { $cpus } CPU(s) and is told about { $memory } of memory; the host has { $host-cores } cores and { $host-memory }
answer-start = { $backend }: { $value }
answer-start-order = from fastest to slowest start: { $order }
answer-start-factor = { $slow } took { $factor } times as long as { $fast } (ratio of the medians)
answer-longest-phase = the longest phase of the { $backend } start was `{ $phase }`, { $duration }: { $meaning }
answer-memory = { $backend }: { $mib } per idle instance ({ $how }), so { $per-gib } idle instances per GiB
answer-exits-per-read = VM exits per 4 KiB random read: { $value }
answer-ratio = { $backend }, `{ $metric }`: { $value }
answer-verdict = : { $verdict }
answer-above = **above native**, beyond the noise of this run (the interval excludes 1)
answer-below = **below native**, beyond the noise of this run (the interval excludes 1)
answer-no-difference = **no difference this run could detect** (the interval includes 1)
answer-filter = the container's system-call filter: { $seccomp }; its user namespace: { $userns }; the VMM's filters: { $vm-seccomp }

## Factor effects, the A/A check, the emulation and guest-memory tables, the runs

ratio-n = { $ratio } [{ $lo }–{ $hi }], n={ $from }/{ $to }
effects-none = run { $run } varied no setting side by side; `isolab run --factor NAME=V1,V2` does
effects-header = | setting | backend | held fixed | change | workload | metric | ratio [95% CI] |
effects-aa-column = A/A noise
aa-none = run { $run } had no A/A check; `isolab run --aa native` runs one
aa-sentence = A/A check ({ $b } / { $a }, the same column run twice, interleaved): differences smaller than { $floor } cannot be told from noise on this host now (median over { $metrics } headline metrics of how far the A'/A interval reaches from 1; widest { $widest } for { $workload } { $metric }).
aa-sentence-none = A/A check ({ $b } / { $a }): no headline metric has samples in both copies, so there is no noise floor for this run.
aa-header = | workload | metric | A'/A [95% CI] | resolves |
method-runs = This book rests on { $n } runs, each described on its own; no figure divides a number of one run by a number of the other unless both measured the workload with the same parameters.
method-run-item = **Run { $run }** (the book's { $role } figures): { $methodology }
method-params-column = parameters in run { $run }
method-differs = differs
method-not-run = not run
emulation-header = | workload | metric | native | container | vm | qemu-tcg (emulator) |
emulation-none = run { $run } has none of the CPU and memory workloads
memory-header = | guest RAM backed by | KVM exits to the agent's start | nested page faults to the agent's start | guest RAM touched | of it on huge pages |
memory-not-recorded = not recorded (a run from before `--vm-memory`: small pages)
memory-others = This run backed guest RAM one way; the others are a run away: { $commands }.

## Factors, and the published study's note

word-and = and
word-or = or
factors-no-backend = no backend of the run
factors-item = { $factor } ({ $values }) on { $backends }
factors-not-crossed = , not crossed with { $backends }
factors-sentence = Factors: { $factors }. Each combination is a column, interleaved with the others in every repetition; an effect is the ratio to the factor's first value.
published-note = Ratios are sandbox / native; theirs are quoted from { $source }, not measured here.
params-none = none

## Precision of the headline intervals (above the summary table)

precision-rule = the --until-ci rule, { $pct }
precision-within = Precision: { $narrow } of { $total } headline intervals (each workload's primary metrics, every column) lie within { $rule } of their median
precision-item = { $workload } { $metric } on { $column } ({ $spread }, n={ $n })
precision-median-zero = median 0
precision-more = { " " }and { $more } more
precision-wider = ; { $wide } are wider (marked ~): { $list }{ $more }.
precision-advice = More repetitions narrow them: --until-ci 5% adds them by rule.
precision-span = { $lo } to { $hi }
precision-until-ci = --until-ci { $pct }: { $stopped } after { $rounds } added round(s); { $span } measured repetitions per column and workload (caps: { $max-reps } repetitions, { $max-wall }).
precision-not-converged = Did not converge: { $names }.
precision-no-sample-item = { $workload } { $metric } on { $column }
precision-no-samples = Headline metrics without any successful sample (not counted): { $list }.

## The charts' own words (titles, axes, legends, labels), in the SVG files and the HTML report

chart-not-drawn = chart { $name } not drawn: { $why }
chart-title-timeline = Start-up timeline of one noop trial, by phase (medians across trials)
chart-no-timeline = no successful measured `noop` trial with a timeline (add the noop workload to the suite)
chart-timeline-axis = time since the trial started (ms, host clock); each segment ends at the phase named in the legend; black: median start-to-ready with its 95% interval
chart-timeline-legend = segment ends at phase:
chart-ready = ready: { $median } ms [{ $lo }–{ $hi }], n = { $n }
chart-ready-phases = { " " }(phases: { $n } trials)
chart-title-ratios = Every metric as ratio to native, with { $level } intervals
chart-no-ratios = no backend other than native has successful trials to compare with native
chart-ratios-axis = ratio = backend median / native median (log scale; native = 1). ↑: higher is better, ↓: lower is better
chart-ratios-reference = native (= 1)
chart-legend-backend = backend:
chart-no-factor = the run varied no factor (isolab run --factor NAME=V1,V2)
chart-title-effects = Effect of each factor on the headline metrics, with { $level } intervals
chart-effects-axis = ratio = median at the changed value / median at the factor's first value (log scale). ↑: higher is better, ↓: lower is better
chart-effects-reference = no effect (= 1)
chart-effects-legend = change:
chart-no-aa = the run had no A/A check (isolab run --aa COLUMN)
chart-aa-no-samples = no headline metric has samples in both A/A copies
chart-title-aa-floor = A/A check: the same column twice; differences under { $pct } are noise here
chart-title-aa = A/A check: the same column twice
chart-aa-axis = ratio = median(A') / median(A) (log scale; identical columns, so any distance from 1 is noise)
chart-aa-legend = columns:
chart-no-latency = no I/O workload reported latency percentiles (metrics ending in _p50/_p99)
chart-title-latency = I/O latency percentiles per backend (median across trials, { $level } whiskers)
chart-latency-axis = latency ({ $unit }; lower is better)
chart-no-net-latency = no network workload across the boundary reported a latency (net-rr, net-crr, net-udp-rr)
chart-title-net-latency = Network request/response latency per backend (median across trials, { $level } whiskers)
chart-no-net-throughput = no network workload across the boundary reported a throughput (net-stream)
chart-title-net-throughput = Network throughput per backend, each direction (median across trials, { $level } whiskers)
chart-throughput-axis = throughput ({ $unit }; higher is better)
chart-no-exits = no sample has VM exit counts (metrics named exits.*)
chart-exits-other = other
chart-title-exits = VM exits per trial, by exit reason (median across trials)
chart-exits-axis = exits to the VMM during one trial (boot, workload and shutdown)
chart-exits-unit = exits
chart-exits-legend = exit reason:
chart-op-4k_io = per 4 KiB I/O
chart-op-4k_read = per 4 KiB random read
chart-op-4k_write = per 4 KiB random write
chart-op-mib_io = per MiB moved
chart-op-mib_write = per MiB written
chart-op-mib_read = per MiB read
chart-op-fsync = per fsync
chart-op-syscall = per system call
chart-op-page_fault = per page fault
chart-op-spawn = per process started
chart-op-sleep = per sleep
chart-op-other = per { $op }
chart-part-device = device (port, MMIO, queue notify)
chart-part-time = time-driven (timer, halt, interrupt window)
chart-part-other = other (nested page faults, MSR, CPUID)
chart-part-kvm = handled inside KVM
chart-part-vmm = reached isolab's VMM
chart-no-exits-per-op = no VM sample has exits per operation (KVM statistics of the workload window)
chart-title-exits-per-op = VM exits per operation of the workload (median across trials)
chart-exits-per-op-axis = exits per operation (each row names its operation)
chart-exits-per-op-unit = exits/op
chart-exits-per-op-legend-cause = why the guest exited (only the device part carries over to other hosts):
chart-exits-per-op-legend-where = where the exit was handled:

## The terminal's factor-effects and A/A tables

term-col-factor = factor
term-col-held-fixed = held fixed
term-col-change = change
term-col-ratio-ci = ratio [95% CI]
term-col-aa-ci = A/A [95% CI]
term-col-aa-ratio = A'/A [95% CI]
term-col-resolves = resolves
term-no-effects = (no headline metric was measured at two values of a factor)
term-effects-note = Factor effects: median at the changed value / median at the factor's first value, the other factors held fixed, with a 95% bootstrap interval; headline metrics (every metric: isolab report --format json).
term-effects-aa-note = A/A: the same metric's A'/A interval, the noise floor beside each effect.
term-aa-note = A/A check: { $b } / { $a }, headline metrics (resolves: how far the interval reaches from 1).
html-effects = Factor effects
html-aa = A/A check

## Density (issue 13) and network (issue 16) text
density-no-run = no density run: measure one with `isolab density`, then build the book with `isolab book --density RUN_DIR`
meter-peak-rss = host.peak_rss: the process's peak resident set (native: the agent; VM: the VMM process)
meter-cgroup = host.cgroup_*: what the sandbox's memory cgroup (the container's, or the VMM process's) charged, whose peak moves in per-CPU charge batches and is not a footprint
meter-guest-ram-touched = host.guest_ram_touched: guest RAM the VM's guest touched
meter-vmm-overhead = host.vmm_overhead: the VMM process's memory outside guest RAM
caveat-memory-meters = Memory figures of this run are each backend's own meter ({ $meters }), not one quantity: never compare them across backends. `isolab density` measures memory per instance with one meter for every backend (the host's MemAvailable drop over N instances, and PSS).
caveat-cpu-meters = CPU times come from two meters, shown under their own names and never divided by each other: host.cpu_* is the process's CPU time from rusage (native: the agent; VM: the VMM process, its vCPU threads included); host.cgroup_cpu_* is the container's cgroup CPU accounting.
figure-title-density-memory = Host memory per instance against the number of instances
figure-caption-density-memory = Host memory per instance against the number of instances running, the same meter for every backend. Filled points: the host's MemAvailable drop divided by N (median over the rounds, whiskers its 95% interval, cut at the edge where a busy host's noise dwarfs a few instances); hollow points on dashed lines: PSS per instance; thin line: the marginal memory (the slope over every N).
figure-title-density-components = What grew in /proc/meminfo per instance
figure-caption-density-components = What grew in /proc/meminfo per instance at each backend's largest N: anonymous memory is the processes' own; page tables, kernel stacks, slab and per-CPU memory are what the kernel keeps for them (namespaces, cgroups).
figure-title-density-start = Start latency against the number of instances
figure-caption-density-start = Start latency against the number of instances: from the start call to the agent's ready marker, p50 (solid) and p99 (dashed) over every instance of every round.
density-per-instance-ci = { $mib } per instance [95% CI { $lo }–{ $hi }]
density-backend-floor = container floor
density-backend-emulated = { $backend } (emulated)
density-parallel-all = all
density-unknown-backend = unknown backend { $backend }
density-not-in-run = { $backend } was not in density run { $run }
density-ws-idle = idle (no working set)
density-ws-written = a working set of { $size } written
density-ksm-host-run = the host had run = { $run }
density-ksm-host-none = this kernel has no KSM
density-ksm-host = left as the host had it ({ $host })
density-ksm-on = on for the run ({ $host }, put back after); a VMM marks its guest's RAM mergeable, so KSM can share identical guest pages between VMs (each round waits until two full scans in a row barely change what it shares, and reports what its host-wide counters grew by); a native process or a container marks no memory mergeable, so KSM finds nothing of theirs
density-ksm-off = off for the run ({ $host }, put back after)
density-method = Each instance runs isolab's agent in its `wait` mode: { $ws }, then it reports ready and waits. For each backend and N ({ $counts }), { $rounds }: the host's /proc/meminfo is read just before the first start (median of several samples, each field on its own), N instances start ({ $parallel } at a time), and once all are ready and have settled { $settle } the host is read again; the drop of MemAvailable is what the N instances cost the host, whatever kind of memory it is. Every instance's processes' PSS (smaps_rollup) is summed beside it: PSS counts a page shared by k processes as 1/k in each, but misses what the kernel keeps for an instance (namespaces, cgroups, page tables). The marginal memory per instance is the slope of the drop against N (least squares over every round, 95% interval by resampling rounds within each N) and the fixed cost its intercept; instances that fit = (MemAvailable − { $headroom } of MemTotal − fixed cost) ÷ marginal. A container's memory cgroup's charge is shown beside as the cgroup's view; it is not a footprint (it counts page cache charged to whoever touched it first, and on cgroup v1 moves in per-CPU batches of 64 pages). Start latency is from the start call to the agent's ready marker, for every instance of the storm and for { $beside } more started one at a time beside N; teardown from the first kill to the last reap with every cgroup removed; then the time until MemAvailable is back at its baseline. KSM: { $ksm }.
density-emulated-time = { $value }, emulated: not a performance figure
density-emulated-size = { $value }, in the emulated machine
density-none-ready = no instance of { $backend } got ready
density-at-n = at N = { $n }
density-few-ns = fewer than two Ns measured
density-no-marginal = no positive marginal memory
density-no-bound = no bound
density-fit = { $instances } instances [{ $lo }–{ $hi }] with { $headroom } of the host's memory kept free
density-cgroup-only-container = only a container has a cgroup of its own
density-no-cgroup = no cgroup
density-cgroup = { $mib } per instance { $at }
density-no-start = no start
density-start = { $ms } { $at } ({ $parallel } at a time, n = { $n })
density-no-beside = no start beside N was measured
density-beside = { $ms } beside N = { $count } running (n = { $n })
density-no-teardown = no teardown was timed
density-teardown = { $ms } for { $count } instances
density-no-recovery = MemAvailable was not back within the wait
density-vm-only = only a VM has a guest and a VMM
density-vm-split = { $guest } of guest RAM touched and { $vmm } of the VMM's own per VM (PSS of its VMM process) { $at }
density-vm-inside = ; inside, the guest's kernel and agent used { $used } of the { $total } its kernel manages
density-ksm-not-on = KSM was not on for this run: `--ksm on`
density-ksm = { $pages } pages merged into { $into } ({ $saved } saved) after { $after } { $at }
density-unknown-value = unknown density value `{ $value }`; choose from { $choices }
density-capacity-header = | backend | marginal memory per instance (MemAvailable drop vs N) | fixed cost | PSS per instance | instances that fit, { $headroom } kept free | start p50 / p99 at the largest N | teardown |
density-stopped = { $backend } stopped at N = { $n }: { $why }
density-from-run = From density run { $run } ({ $rounds } per N, N = { $counts }).
density-floor-agree = The container's marginal memory ({ $container } [{ $clo }–{ $chi }]) and its floor's ({ $floor } [{ $flo }–{ $fhi }]) agree within their 95% intervals.
density-floor-disagree = The container's marginal memory ({ $container } [{ $clo }–{ $chi }]) and its floor's ({ $floor } [{ $flo }–{ $fhi }]) do not agree within their 95% intervals.
density-no-floor = the density run has no marginal memory for the container and its floor
density-rounds = { $n ->
    [one] { $count } round
   *[other] { $count } rounds
}
answer-density = { $backend }: { $marginal } (the host's MemAvailable drop against N, the same meter for every backend); { $fit } on this host
answer-memory-meters = this book has no density run, so these are each backend's own meter from single trials, not one quantity: measure with `isolab density` and build the book with `--density` to compare them
density-chart-start-left-out = density_start: { $backend } left out (emulated start times are not performance figures)
density-chart-no-round = no round was measured
density-chart-memory-title = Host memory per instance vs N (MemAvailable drop ÷ N, and PSS per instance)
density-chart-memory-x = instances running (N, log scale)
density-chart-memory-y = MiB per instance
density-chart-drop = { $backend }: MemAvailable drop ÷ N
density-chart-pss = { $backend }: PSS per instance
density-chart-off-scale = off the scale, drawn at the edge (MiB; the host's noise): { $listed }
density-chart-no-growth = no part of /proc/meminfo grew in any measured round
density-chart-components-title = What grew in /proc/meminfo per instance (at each backend's largest N)
density-chart-components-x = MiB per instance (medians over the rounds; parts that shrank are left out)
density-chart-components-legend = part:
density-chart-none-ready-real = no instance outside the emulated machine got ready (emulated start times are not performance figures)
density-chart-none-ready = no instance got ready
density-chart-start-title = Start latency vs N (start to ready; p50 solid, p99 dashed)
density-chart-start-x = instances started (N, log scale)
density-chart-start-y = ms (log scale)
density-part-anonymous = anonymous
density-part-page-tables = page tables
density-part-kernel-stacks = kernel stacks
density-part-slab-unreclaimable = slab, unreclaimable
density-part-slab-reclaimable = slab, reclaimable
density-part-per-CPU = per-CPU
density-part-shared-memory = shared memory
density-part-file-pages = file pages
why-no-fact-emulated = { $backend } ran inside the emulated machine, which does not report the VMM's { $key } back to this host; a run on hardware KVM records it

## The report of a density run (`isolab report DENSITY_RUN`, `isolab density`)

density-report-title = isolab density run { $run }
density-report-run-line = Density run { $run } on { $host } (kernel { $kernel }, { $cores } cores, { $memory }), { $started }: { $status }
density-report-idle = idle
density-report-working-set = working set { $size }
density-report-instances = Instances: { $ws }; N = { $counts }; { $rounds } each; { $parallel } at a time; { $beside } beside N
density-report-memory-intro = Memory per instance, one meter for every backend (the host's MemAvailable drop against N; PSS beside it; fit with { $headroom } headroom):
density-report-per-n-intro = Per N (medians over the rounds [interval]; the cgroup view is what the containers' memory cgroups charge, not a footprint):
density-report-method-label = Method:
density-report-memory-heading = Memory per instance: one meter for every backend
density-report-memory-lead = The marginal memory is the slope of the host's MemAvailable drop against the number of instances; PSS is beside it; instances that fit keep { $headroom } of the host's memory free.
density-report-per-n-heading = Per N
density-report-method-heading = Method
density-report-chart-not-drawn = Chart not drawn: { $why }
density-col-backend = backend
density-col-marginal = marginal MiB/instance [95% CI]
density-col-fixed = fixed MiB
density-col-pss = PSS MiB/instance [95% CI]
density-col-fit = instances that fit [CI]
density-col-rounds = rounds
density-col-n = N
density-col-drop = drop/N MiB
density-col-others = others' anon/N
density-col-pss-n = PSS/N MiB
density-col-cgroup = cgroup view/N MiB
density-col-start-p50 = start p50 ms
density-col-p90 = p90
density-col-p99 = p99
density-col-max = max
density-col-last = last
density-col-beside = one more p50 ms
density-col-teardown = teardown ms
density-col-recovery = memory back ms
density-rounds-at = { $points } at { $counts } N
density-not-back-some = { $ms } ({ $n } not back)
density-not-back = not back ({ $n })
density-note-components = { $backend } at N = { $n }: what grew in /proc/meminfo per instance (MiB): { $parts }.
density-note-phases = container start phases at N = { $n } (median ms after its start began): { $phases }.
density-note-vm = { $backend } at N = { $n }: per VM (MiB, PSS of its VMM process, median [95% CI]): guest RAM touched { $guest }, VMM overhead { $vmm }{ $inside }.
density-note-vm-inside = ; inside the guest, its kernel and agent use { $used } of the { $total } its kernel manages (MemTotal − MemAvailable, and MemTotal)
density-note-ksm = { $backend } at N = { $n }: KSM merged { $pages } pages into { $into } (pages_sharing and pages_shared grown during the round, medians over { $rounds }): { $saved } saved, settled after { $waited }{ $unsettled }.
density-note-ksm-unsettled = { $n ->
    [one] { " " }({ $n } round did not settle within --ksm-settle)
   *[other] { " " }({ $n } rounds did not settle within --ksm-settle)
}
density-note-noisy = The host's other processes moved their anonymous memory by more than a quarter of the drop meanwhile ({ $which }): those drops measure the rest of the host as much as the instances; their intervals say how much. Trust the largest N and PSS most, or measure on a quieter host.
density-note-stopped = { $backend } stopped at N = { $n } ({ $kind }): { $why }
density-stop-refused = refused: the estimate would eat the headroom
density-stop-floor = MemAvailable fell below the floor
density-stop-limit = a host limit
density-stop-failed = instances did not start
density-stop-interrupted = interrupted
density-stop-unavailable = unavailable here
density-note-left-behind = { $n ->
    [one] { $n } round left something behind after the teardown (see { $file }); run `isolab doctor --clean`.
   *[other] { $n } rounds left something behind after the teardown (see { $file }); run `isolab doctor --clean`.
}
density-note-emulated = { $backend } ran inside the emulated machine (QEMU TCG with AMD-V, --vm-in-emulator): its memory figures are what the guests and VMM processes did and are valid, measured against the emulated machine's memory (so are its "instances that fit"); its times are emulated, never performance figures.
density-note-torn = The last round's line was torn (the run was killed while writing it) and is left out.
density-chart-p50 = { $backend } p50
density-chart-p99 = { $backend } p99
