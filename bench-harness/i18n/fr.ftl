# isolab's generated text, French. Above each message, `# en:` quotes the English (en.ftl) it
# translates: when the English changes, the check calls the translation fuzzy until both the
# translation and its `# en:` line are updated. Numbers arrive already formatted (decimal comma,
# narrow no-break spaces): do not format them again.

## Values the run lacks

# en: not measured in this run
not-measured = non mesuré dans cette exécution
# en: *{ not-measured } ({ $why })*
missing-value = *{ not-measured } ({ $why })*
# en: the { $workload } workload was not part of this run
why-workload-absent = la charge { $workload } ne faisait pas partie de cette exécution
# en: { $backend } unavailable: { $reason }
why-unavailable = { $backend } indisponible : { $reason }
# en: { $backend } unavailable on this host
why-unavailable-here = { $backend } indisponible sur cet hôte
# en: no measured trial of { $entry } on { $backend } was stored; the run may have been interrupted
why-no-trial-stored = aucun essai mesuré de { $entry } sur { $backend } n’a été enregistré ; l’exécution a peut-être été interrompue
# en: the { $backend } backend was not part of this run
why-backend-absent = l’environnement { $backend } ne faisait pas partie de cette exécution
# en: all { $n } trials of { $entry } on { $backend } failed: { $reason }
why-all-failed = { $n ->
    [one] l’unique essai de { $entry } sur { $backend } a échoué : { $reason }
   *[other] les { $n } essais de { $entry } sur { $backend } ont tous échoué : { $reason }
}
# en: { $backend } ran only inside an emulated machine, whose times are not performance figures
why-emulated-only = { $backend } n’a tourné que dans une machine émulée, dont les temps ne sont pas des mesures de performance
# en: { $backend } does not report { $metric } for { $entry }
why-metric-absent = { $backend } ne fournit pas { $metric } pour { $entry }
# en: { $backend } has no usable { $entry } trial
why-no-usable-trial = { $backend } n’a aucun essai utilisable de { $entry }
# en: the run's manifest records no { $key } for { $backend }; runs made before isolab recorded it lack it
why-no-fact = le manifeste de l’exécution n’indique pas { $key } pour { $backend } ; les exécutions antérieures à son enregistrement par isolab ne l’ont pas

## Medians and ratios

# en: { $median }{ $unit } [{ $level } CI { $lo }–{ $hi }], n={ $n }{ $suffix }
median-ci = { $median }{ $unit } [IC à { $level } { $lo }–{ $hi }], n = { $n }{ $suffix }
# en: { $median }{ $unit } [range { $lo }–{ $hi }, { $coverage } coverage: too few trials for { $level }], n={ $n }{ $suffix }
median-range = { $median }{ $unit } [étendue { $lo }–{ $hi }, couverture { $coverage } : trop peu d’essais pour { $level }], n = { $n }{ $suffix }
# en: { " " }(run { $run }, with other parameters than native's)
median-other-run = { " " }(exécution { $run }, avec d’autres paramètres que celle du natif)
# en: { " " }(counted in an emulated machine: a count, not a speed){ $other }
median-counted-emulated = { " " }(compté dans une machine émulée : un décompte, pas une vitesse){ $other }
# en: { $ratio } native [{ $level } CI { $lo }–{ $hi }{ $aa }]
ratio-native = { $ratio } le natif [IC à { $level } { $lo }–{ $hi }{ $aa }]
# en: ; A/A noise { $pct }
ratio-aa-note = ; bruit A/A { $pct }
# en: *no ratio: the VM's { $entry } comes from run { $run }, measured with other parameters than native's (chapter 9 lists both)*
ratio-other-run = *pas de rapport : la valeur { $entry } de la VM vient de l’exécution { $run }, mesurée avec d’autres paramètres que celle du natif (le chapitre 9 décrit les deux)*
# en: *{ not-measured } (no ratio: { $why })*
ratio-no-native = *{ not-measured } (pas de rapport : { $why })*

## The runs and the backends

# en: one run of `isolab run`, run **{ $run }**
runs-one = une exécution de `isolab run`, l’exécution **{ $run }**
# en: two runs of `isolab run`: run **{ $base }** ({ $base-role }) and run **{ $vm }** ({ $vm-role }), each with its own suite, sizes and repetitions ([chapter 9]({ $url }) describes both)
runs-two = deux exécutions de `isolab run` : l’exécution **{ $base }** ({ $base-role }) et l’exécution **{ $vm }** ({ $vm-role }), chacune avec sa propre suite, ses tailles et ses répétitions (le [chapitre 9]({ $url }) décrit les deux)
# en: no backend
no-backend = aucun environnement
# en: **{ $backend }**: not part of this run
avail-absent = **{ $backend }** : ne faisait pas partie de cette exécution
# en: **{ $backend }**: unavailable: { $reason }
avail-unavailable = **{ $backend }** : indisponible : { $reason }
# en: no reason recorded
avail-no-reason = aucune raison enregistrée
# en: **{ $backend }**: measured
avail-measured = **{ $backend }** : mesuré
# en: **{ $backend }**: ran only inside an emulated machine: its counts and its view of the inside are shown, its times are not
avail-emulated = **{ $backend }** : n’a tourné que dans une machine émulée : ses décomptes et sa vue de l’intérieur sont montrés, ses temps ne le sont pas
# en: **{ $backend }**: no successful measured trial
avail-failed = **{ $backend }** : aucun essai mesuré réussi
# en: { " " }(from run { $run })
avail-from-run = { " " }(de l’exécution { $run })
# en: run { $run } ({ $role })
manifest-run-column = exécution { $run } ({ $role })

## Start-up phases

# en: | # | phase ends at | median duration | cumulative | what happened |
phases-header = | n° | fin de la phase à | durée médiane | cumul | ce qui s’est passé |
# en: Medians of { $n } `noop` trials of { $backend } on the host clock (the segments' medians add up to the median *path*, not to the median total).
phases-footer = { $n ->
    [one] Médiane d’un essai `noop` de { $backend } sur l’horloge de l’hôte (les médianes des segments s’additionnent en la médiane du *chemin*, pas en la médiane du total).
   *[other] Médianes de { $n } essais `noop` de { $backend } sur l’horloge de l’hôte (les médianes des segments s’additionnent en la médiane du *chemin*, pas en la médiane du total).
}
# en: `KVM_CREATE_VM`: an empty virtual machine, no memory, no CPU yet
phase-vm-vm_created = `KVM_CREATE_VM` : une machine virtuelle vide, sans mémoire ni processeur pour l’instant
# en: guest RAM mapped in the VMM and handed to KVM (`KVM_SET_USER_MEMORY_REGION`)
phase-vm-memory_ready = la RAM de l’invité est projetée dans le VMM et confiée à KVM (`KVM_SET_USER_MEMORY_REGION`)
# en: kernel, initramfs, command line, boot parameters, page tables and MP table written into guest RAM
phase-vm-kernel_loaded = noyau, initramfs, ligne de commande, paramètres d’amorçage, tables de pages et table MP écrits dans la RAM de l’invité
# en: vCPU created; registers, CPUID, MSRs set; serial port wired to an irqfd
phase-vm-vcpu_configured = vCPU créé ; registres, CPUID et MSR réglés ; port série relié à un irqfd
# en: the vCPU thread enters the guest for the first time (`KVM_RUN`)
phase-vm-first_kvm_run = le thread du vCPU entre dans l’invité pour la première fois (`KVM_RUN`)
# en: the guest kernel booted and ran `/init`: the agent's first marker (a port write, one exit)
phase-vm-agent_ready = le noyau invité a démarré et lancé `/init` : premier marqueur de l’agent (une écriture de port, une sortie)
# en: the guest asked to stop (power-off or reset)
phase-vm-exited = l’invité a demandé l’arrêt (extinction ou réinitialisation)
# en: vCPU, devices, VM and guest memory released
phase-vm-cleaned_up = vCPU, périphériques, VM et mémoire de l’invité libérés
# en: the trial's cgroup exists, with its memory, CPU and pids limits
phase-container-cgroup_created = le groupe de contrôle de l’essai existe, avec ses limites de mémoire, de processeur et de processus
# en: `clone3` with new namespaces returned in the parent
phase-container-clone_returned = `clone3` avec de nouveaux espaces de noms est revenu dans le parent
# en: the child's first instruction, already inside its new namespaces
phase-container-child_started = première instruction de l’enfant, déjà dans ses nouveaux espaces de noms
# en: the child is accounted to its cgroup
phase-container-cgroup_joined = l’enfant est comptabilisé dans son groupe de contrôle
# en: hostname set, loopback up, cgroup namespace entered
phase-container-namespaces_ready = nom d’hôte fixé, interface loopback activée, espace de noms cgroup rejoint
# en: root in place: the container's own copy of the mount namespace prepared once per run (the read-only root filesystem as `/`, none of the host's mounts; rootless: `pivot_root` per container), then /proc, /sys, /tmp and the masks mounted
phase-container-root_pivoted = racine en place : la copie propre au conteneur de l’espace de noms de montage préparé une fois par exécution (le système de fichiers racine en lecture seule comme `/`, aucun montage de l’hôte ; sans root : un `pivot_root` par conteneur), puis /proc, /sys, /tmp et les masques montés
# en: capabilities dropped; `execve` of the agent as PID 1
phase-container-exec = capacités abandonnées ; `execve` de l’agent comme PID 1
# en: PID 1 ended, and with it every process in the PID namespace
phase-container-exited = le PID 1 s’est terminé, et avec lui tous les processus de l’espace de noms PID
# en: the cgroup removed; nothing of the container is left
phase-container-cleaned_up = le groupe de contrôle est supprimé ; il ne reste rien du conteneur
# en: `fork`/`exec` of the agent returned in the harness
phase-any-spawned = le `fork`/`exec` de l’agent est revenu dans le banc d’essai
# en: the agent runs: its first marker arrived
phase-any-agent_ready = l’agent tourne : son premier marqueur est arrivé
# en: the workload begins
phase-any-workload_start = la charge commence
# en: the workload ends
phase-any-workload_end = la charge se termine
# en: the result is written
phase-any-result_written = le résultat est écrit
# en: the agent ended
phase-any-exited = l’agent s’est terminé
# en: the exit status was collected
phase-any-reaped = le code de sortie a été recueilli
# en: everything of the trial is released
phase-any-cleaned_up = tout ce qui appartenait à l’essai est libéré

## VM exits

# en: a write to the emulated serial port: one exit per byte of console output
exit-io_out-serial = une écriture sur le port série émulé : une sortie par octet affiché sur la console
# en: a read of a serial-port register (the driver polls its status)
exit-io_in-serial = une lecture d’un registre du port série (le pilote interroge son état)
# en: the agent's timing marker: one port write per event
exit-marker = le marqueur de temps de l’agent : une écriture de port par événement
# en: the CMOS real-time clock, read at boot
exit-rtc = l’horloge temps réel CMOS, lue à l’amorçage
# en: the keyboard controller, probed at boot and used to reset
exit-i8042 = le contrôleur de clavier, sondé à l’amorçage et utilisé pour la réinitialisation
# en: a port with no device behind it: the kernel probing for hardware
exit-port-other = un port sans périphérique derrière : le noyau cherche du matériel
# en: an access to an address with no RAM (memory-mapped I/O)
exit-mmio = un accès à une adresse sans RAM (entrées-sorties projetées en mémoire)
# en: the vCPU halted
exit-hlt = le vCPU s’est arrêté (HLT)
# en: triple fault: the guest could not continue
exit-shutdown = triple faute : l’invité ne pouvait pas continuer
# en: the guest asked to power off or reset
exit-system_event = l’invité a demandé l’extinction ou la réinitialisation
# en: KVM returned to the VMM for a signal or an interrupt window
exit-intr = KVM est revenu au VMM pour un signal ou une fenêtre d’interruption
# en: KVM could not enter or emulate: an error
exit-error = KVM n’a pas pu entrer dans l’invité ou émuler : une erreur

## Capacity

# en: guest RAM touched + VMM
capacity-how-vm = RAM touchée de l’invité + VMM
# en: cgroup peak
capacity-how-cgroup = pic du groupe de contrôle
# en: peak RSS
capacity-how-rss = pic de RSS

## The terminal report

# en: Run { $run } ({ $status }) started { $started } on { $host } ({ $cpu }, { $cores } cores, kernel { $kernel }, KVM: { $kvm }).
term-run-line = Exécution { $run } ({ $status }) commencée le { $started } sur { $host } ({ $cpu }, { $cores } cœurs, noyau { $kernel }, KVM : { $kvm }).
# en: Methodology:
term-methodology = Méthodologie :
# en: Caveats:
term-caveats = Réserves :
# en: workload
summary-col-workload = charge
# en: metric
summary-col-metric = métrique
# en: backend
summary-col-backend = environnement
# en: median
summary-col-median = médiane
# en: 95% CI
summary-col-ci = IC à 95 %
# en: n
summary-col-n = n
# en: vs native
summary-col-vs-native = rapport au natif

## VM exits table

# en: | exit reason | median per trial | what it is |
exits-header = | raison de la sortie | médiane par essai | ce que c’est |
# en: **all exits**
exits-total = **toutes les sorties**
# en: Counted by a VM that ran inside an emulated machine: the counts are what the guest did; the times are not measured.
exits-emulated = Compté par une VM qui tournait dans une machine émulée : les décomptes sont ce que l’invité a fait ; les temps ne sont pas mesurés.

## Figures

# en: Figure `{ $name }`
figure-label = Figure `{ $name }`

## Methodology (the paragraph every report and the book print)

# en: none
list-none = aucun
# en: { $rest } and { $last }
list-and = { $rest } et { $last }
# en: { $n -> [one] { $count } trial *[other] { $count } trials
count-trials = { $n ->
    [one] { $count } essai
   *[other] { $count } essais
}
# en: { $n -> [one] { $count } workload *[other] { $count } workloads
count-workloads = { $n ->
    [one] { $count } charge
   *[other] { $count } charges
}
# en: { $n -> [one] { $count } repetition *[other] { $count } repetitions
count-repetitions = { $n ->
    [one] { $count } répétition
   *[other] { $count } répétitions
}
# en: { $n -> [one] { $count } warm-up round *[other] { $count } warm-up rounds
count-warmup-rounds = { $n ->
    [one] { $count } tour de chauffe
   *[other] { $count } tours de chauffe
}
# en: { $n -> [one] { $count } warm-up sample *[other] { $count } warm-up samples
count-warmup-samples = { $n ->
    [one] { $count } échantillon de chauffe
   *[other] { $count } échantillons de chauffe
}
# en: { $n -> [one] { $count } CPU *[other] { $count } CPUs
count-cpus = { $n ->
    [one] { $count } processeur
   *[other] { $count } processeurs
}
# en: { $n -> [one] { $count } core *[other] { $count } cores
count-cores = { $n ->
    [one] { $count } cœur
   *[other] { $count } cœurs
}
# en: Run { $run } measured { $trials } of { $workloads } on { $backends } ({ $reps } planned per column and workload{ $until }), after { $warmup } per column and workload ({ $warmup-samples } stored but not summarised).
method-trials = L’exécution { $run } a mesuré { $trials } de { $workloads } sur { $backends } ({ $reps } prévues par colonne et par charge{ $until }), après { $warmup } par colonne et par charge ({ $warmup-samples } enregistrés mais non résumés).
# en: , more where --until-ci asked for them
method-more-until-ci = , davantage là où --until-ci l’a demandé
# en: { $ok } produced a result that enters the statistics; { $failed } failed and { $emulated } ran in an emulated machine (both are listed, neither is summarised as performance).
method-outcomes = { $ok } ont donné un résultat qui entre dans les statistiques ; { $failed } ont échoué et { $emulated } ont tourné dans une machine émulée (les uns et les autres sont listés, aucun n’est résumé comme mesure de performance).
# en: In every repetition each workload ran once per column (a backend with its factor values), the columns in an order shuffled anew (seed { $seed }), so slow drift of the host falls on all columns alike.
method-shuffle = À chaque répétition, chaque charge a tourné une fois par colonne (un environnement avec les valeurs de ses facteurs), les colonnes dans un ordre tiré à nouveau au hasard (graine { $seed }), si bien qu’une lente dérive de l’hôte touche toutes les colonnes de la même façon.
# en: Repetitions were added by rule (--until-ci { $pct }): rounds of one more repetition of every column, interleaved, for each workload with a headline interval reaching further than that from its median, up to { $max-reps } repetitions and { $max-wall }; { $rounds } round(s) were added and the rule { $outcome }.
method-until-ci = Des répétitions ont été ajoutées selon une règle (--until-ci { $pct }) : des tours d’une répétition de plus de chaque colonne, entrelacés, pour chaque charge dont un intervalle principal s’écarte davantage de sa médiane, jusqu’à { $max-reps } répétitions et { $max-wall } ; { $rounds } tour(s) ajouté(s), et la règle { $outcome }.
# en: was met
method-until-met = a été satisfaite
# en: was not met everywhere ({ $why })
method-until-not-met = n’a pas été satisfaite partout ({ $why })
# en: As an A/A check, column { $column } ran twice as if it were two ({ $a } and { $b }), interleaved like the others; their ratio shows the smallest difference this host resolved during the run.
method-aa = En guise de contrôle A/A, la colonne { $column } a tourné deux fois comme s’il s’agissait de deux colonnes ({ $a } et { $b }), entrelacées comme les autres ; leur rapport montre la plus petite différence que cet hôte a su distinguer pendant l’exécution.
# en: Each figure is the median of its samples with a distribution-free { $level } confidence interval from order statistics (binomial ranks; no normality is assumed; with fewer than 6 samples { $level } is out of reach and min..max is given with its actual coverage). Ratios to native are median(backend) / median(native) with a { $level } percentile-bootstrap interval ({ $resamples } resamples, fixed seed, so every number can be recomputed from samples.jsonl).
method-statistics = Chaque chiffre est la médiane de ses échantillons avec un intervalle de confiance à { $level } non paramétrique, tiré des statistiques d’ordre (rangs binomiaux ; aucune normalité n’est supposée ; avec moins de 6 échantillons, { $level } est hors d’atteinte et l’on donne min..max avec sa couverture effective). Les rapports au natif sont médiane(environnement) / médiane(natif) avec un intervalle bootstrap percentile à { $level } ({ $resamples } rééchantillonnages, graine fixe, de sorte que chaque nombre peut être recalculé à partir de samples.jsonl).
# en: Sandbox size: { $memory } of memory and { $cpus } for container and VM alike. Host: { $host } ({ $cpu-model }, { $cores }, { $host-memory }), kernel { $kernel }, { $kvm }, cgroups { $cgroups }.
method-sandbox = Taille du bac à sable : { $memory } de mémoire et { $cpus }, pour le conteneur comme pour la VM. Hôte : { $host } ({ $cpu-model }, { $cores }, { $host-memory }), noyau { $kernel }, { $kvm }, cgroups { $cgroups }.
# en: running or killed
status-running = en cours ou tuée
# en: complete
status-complete = terminée
# en: interrupted
status-interrupted = interrompue
# en: stopped by an error
status-failed = arrêtée par une erreur
# en: still running or killed
stop-running = toujours en cours ou tuée
# en: every headline interval met the rule
stop-converged = chaque intervalle principal a satisfait la règle
# en: stopped at the repetition cap
stop-repetition-cap = arrêtée au plafond de répétitions
# en: stopped at the wall-clock cap
stop-wall-cap = arrêtée au plafond de durée
# en: interrupted by Ctrl-C
stop-interrupted = interrompue par Ctrl-C
# en: hardware KVM (kvm_intel, VT-x)
kvm-intel = KVM matériel (kvm_intel, VT-x)
# en: hardware KVM (kvm_amd, AMD-V)
kvm-amd = KVM matériel (kvm_amd, AMD-V)
# en: PVM (kvm_pvm): software virtualization, cannot boot stock Linux guests
kvm-pvm = PVM (kvm_pvm) : virtualisation logicielle, incapable d’amorcer un invité Linux standard
# en: /dev/kvm present, provider unknown
kvm-unknown = /dev/kvm présent, fournisseur inconnu
# en: no /dev/kvm
kvm-none = pas de /dev/kvm

## Caveats

# en: Partial run: status { $status }, { $stored } of { $planned } planned trials stored. The figures use the samples that exist; some backends or workloads may have fewer repetitions than planned.
caveat-partial = Exécution partielle : état { $status }, { $stored } essais enregistrés sur { $planned } prévus. Les chiffres utilisent les échantillons existants ; certains environnements ou certaines charges peuvent avoir moins de répétitions que prévu.
# en: The last line of samples.jsonl was incomplete (the run was killed while writing it) and was skipped.
caveat-torn-tail = La dernière ligne de samples.jsonl était incomplète (l’exécution a été tuée pendant son écriture) et a été ignorée.
# en: no trial of it was stored
caveat-no-trial-stored = aucun de ses essais n’a été enregistré
# en: Backend { $backend } has no samples in this run: { $why }.
caveat-backend-no-samples = L’environnement { $backend } n’a aucun échantillon dans cette exécution : { $why }.
# en: Backend { $backend } produced no successful measured trial; it appears only in the failure list.
caveat-backend-no-success = L’environnement { $backend } n’a produit aucun essai mesuré réussi ; il n’apparaît que dans la liste des échecs.
# en: { $n -> [one] { $count } sample ran the VM inside an emulated machine (no hardware virtualization). It is labelled "vm (emulated)", has no ratio to native, and is left out of the timing charts: it shows that the VM works and what it counts (memory, exits), not how fast it is. *[other] { $count } samples ran the VM inside an emulated machine (no hardware virtualization). They are labelled "vm (emulated)", have no ratio to native, and are left out of the timing charts: they show that the VM works and what it counts (memory, exits), not how fast it is.
caveat-emulated = { $n ->
    [one] { $count } échantillon a fait tourner la VM dans une machine émulée (sans virtualisation matérielle). Il est étiqueté « vm (emulated) », n’a pas de rapport au natif et ne figure pas dans les graphiques de temps : il montre que la VM fonctionne et ce qu’elle compte (mémoire, sorties), pas sa vitesse.
   *[other] { $count } échantillons ont fait tourner la VM dans une machine émulée (sans virtualisation matérielle). Ils sont étiquetés « vm (emulated) », n’ont pas de rapport au natif et ne figurent pas dans les graphiques de temps : ils montrent que la VM fonctionne et ce qu’elle compte (mémoire, sorties), pas sa vitesse.
}
# en: Some figures rest on fewer than 6 samples: their interval is min..max and covers the median with less than { $level } probability (marked *).
caveat-few-samples = Certains chiffres reposent sur moins de 6 échantillons : leur intervalle est min..max et contient la médiane avec une probabilité inférieure à { $level } (marqués *).
# en: Column { $column } did not run: { $why }.
caveat-column-not-run = La colonne { $column } n’a pas tourné : { $why }.
# en: { $wide } of { $total } headline intervals reach further than { $pct } from their median (marked ~); differences smaller than that are not resolved by them.
caveat-wide = { $wide } intervalles principaux sur { $total } s’écartent de plus de { $pct } de leur médiane (marqués ~) ; ils ne permettent pas de distinguer des différences plus petites.
# en: The A/A check of this run puts the noise floor at { $pct }: a ratio closer to 1 than that (a factor's effect, or a backend against native) cannot be told from noise here.
caveat-aa-floor = Le contrôle A/A de cette exécution place le plancher de bruit à { $pct } : un rapport plus proche de 1 (l’effet d’un facteur, ou un environnement face au natif) ne se distingue pas du bruit ici.
# en: { $n -> [one] { $backend }: { $count } trial ({ $workloads }) produced no result: { $reason }. *[other] { $backend }: { $count } trials ({ $workloads }) produced no result: { $reason }.
caveat-failures = { $n ->
    [one] { $backend } : { $count } essai ({ $workloads }) n’a donné aucun résultat : { $reason }.
   *[other] { $backend } : { $count } essais ({ $workloads }) n’ont donné aucun résultat : { $reason }.
}
# en: { $n -> [one] { $backend }: { $count } trial ({ $workloads }) not run: { $reason }. *[other] { $backend }: { $count } trials ({ $workloads }) not run: { $reason }.
caveat-failures-not-run = { $n ->
    [one] { $backend } : { $count } essai ({ $workloads }) non lancé : { $reason }.
   *[other] { $backend } : { $count } essais ({ $workloads }) non lancés : { $reason }.
}

## The environment (manifest) tables

# en: run
env-run = exécution
# en: status
env-status = état
# en: started
env-started = début
# en: ended
env-ended = fin
# en: wall time
env-wall-time = durée réelle
# en: host
env-host = hôte
# en: kernel
env-kernel = noyau
# en: CPU
env-cpu = processeur
# en: { $model } ({ $cores } cores)
env-cpu-value = { $model } ({ $cores } cœurs)
# en: memory
env-memory = mémoire
# en: CPU governor
env-governor = gouverneur de fréquence
# en: not readable
env-not-readable = illisible
# en: host boot_id
env-boot-id = boot_id de l’hôte
# en: agent sha256
env-agent-sha = sha256 de l’agent
# en: suite
env-suite = suite
# en: repetitions / warm-up
env-reps = répétitions / chauffe
# en: sandbox
env-sandbox = bac à sable
# en: { $memory }, { $vcpus } vCPU, { $pids } pids
env-sandbox-value = { $memory }, { $vcpus } vCPU, { $pids } processus au plus
# en: shuffle seed
env-seed = graine du tirage
# en: columns
env-columns = colonnes
# en: one per backend
env-one-per-backend = une par environnement
# en: trials stored / planned
env-trials = essais enregistrés / prévus
# en: command
env-command = commande
# en: { $pct } (caps { $max-reps } repetitions, { $max-wall }): { $rounds } round(s) added, { $why }
env-until-ci = { $pct } (plafonds : { $max-reps } répétitions, { $max-wall }) : { $rounds } tour(s) ajouté(s), { $why }
# en: available
env-available = disponible
# en: unavailable
env-unavailable = indisponible
# en: backend { $backend }
env-backend = environnement { $backend }
# en: platform
env-platform = plateforme
# en: not recorded (the run was made by an isolab that did not record microcode, mitigations, boost, SMT, NUMA, THP, KSM or the kernel command line)
env-platform-not-recorded = non enregistrée (l’exécution a été faite par un isolab qui n’enregistrait ni le microcode, ni les atténuations, ni le boost, ni le SMT, ni la NUMA, ni les THP, ni KSM, ni la ligne de commande du noyau)
# en: not exposed by this host
env-not-exposed = non exposé par cet hôte
# en: active
env-active = actif
# en: inactive
env-inactive = inactif
# en: node { $node }: CPUs { $cpus }
env-numa-node = nœud { $node } : processeurs { $cpus }
# en: stopped
env-ksm-stopped = arrêté
# en: merging
env-ksm-merging = fusionne
# en: unmerging
env-ksm-unmerging = défusionne
# en: { $n } pages per scan
env-ksm-pages-per-scan = { $n } pages par passage
# en: { $ms } ms between scans
env-ksm-sleep = { $ms } ms entre deux passages
# en: { $n } pages sharing at the start
env-ksm-sharing = { $n } pages partagées au départ
# en: CPU signature
env-cpu-signature = signature du processeur
# en: microcode
env-microcode = microcode
# en: CPU vulnerabilities
env-vulnerabilities = vulnérabilités du processeur
# en: cpufreq driver
env-cpufreq = pilote cpufreq
# en: NUMA nodes
env-numa = nœuds NUMA
# en: transparent huge pages
env-thp = pages énormes transparentes
# en: enabled { $enabled }, defrag { $defrag }
env-thp-value = activées { $enabled }, défragmentation { $defrag }
# en: clock source
env-clocksource = source d’horloge
# en: kernel build
env-kernel-build = compilation du noyau
# en: kernel command line
env-cmdline = ligne de commande du noyau
# en: The VM's run { $run } did not complete ({ $status }): its figures use the samples that exist.
caveat-vm-run-incomplete = L’exécution { $run } de la VM ne s’est pas terminée ({ $status }) : ses chiffres utilisent les échantillons existants.

## The summary table (terminal)

# en: unit
summary-col-unit = unité
# en: (no successful measured trials)
summary-no-trials = (aucun essai mesuré réussi)
# en: { $measured } measured samples ({ $warmup } warm-up samples not summarised). Intervals: median, distribution-free order-statistic CI; ratio: percentile bootstrap ({ $resamples } resamples). ↑ higher is better, ↓ lower.
summary-footer = { $measured } échantillons mesurés ({ $warmup } échantillons de chauffe non résumés). Intervalles : médiane, IC non paramétrique par statistiques d’ordre ; rapport : bootstrap percentile ({ $resamples } rééchantillonnages). ↑ plus haut vaut mieux, ↓ plus bas.
# en: * fewer than 6 samples: 95% is out of reach; the interval is min..max with lower coverage.
summary-low-coverage = * moins de 6 échantillons : 95 % est hors d’atteinte ; l’intervalle est min..max, de couverture moindre.
# en: ~ the interval reaches further than { $pct } from its median.
summary-wide = ~ l’intervalle s’écarte de plus de { $pct } de sa médiane.
# en: Emulated samples ran in the HVM test machine (QEMU TCG): correctness only, not performance.
summary-emulated = Les échantillons émulés ont tourné dans la machine de test HVM (QEMU TCG) : correction seulement, pas performance.
# en: emulated time
emulated-time = temps émulé

## The HTML report

# en: isolab report: { $run }
html-title = rapport isolab : { $run }
# en: isolab report: run { $run }
html-heading = Rapport isolab : exécution { $run }
# en: { $started } on { $host } (kernel { $kernel }, { $kvm }), { $stored } of { $planned } planned trials stored, status: { $status }.
html-run-line = { $started } sur { $host } (noyau { $kernel }, { $kvm }), { $stored } essais enregistrés sur { $planned } prévus, état : { $status }.
# en: Backends in this run (same colours in every chart): { $backends }
html-legend = Environnements de cette exécution (mêmes couleurs dans tous les graphiques) : { $backends }
# en: Read this first.
html-read-first = À lire d’abord.
# en: Charts
html-charts = Graphiques
# en: Summary
html-summary = Résumé
# en: Failed trials
html-failed = Essais échoués
# en: One row per backend and reason (every trial: { $command }).
html-failed-note = Une ligne par environnement et par raison (chaque essai : { $command }).
# en: trials
html-col-trials = essais
# en: how many
html-col-how-many = combien
# en: workloads
html-col-workloads = charges
# en: reason
html-col-reason = raison
# en: Methodology
html-methodology = Méthodologie
# en: Environment
html-environment = Environnement
# en: Every number here is recomputed from samples.jsonl and manifest.json of run { $run } by { $command }; the raw samples are in the CSV report.
html-footer = Chaque nombre est recalculé ici à partir de samples.jsonl et de manifest.json de l’exécution { $run } par { $command } ; les échantillons bruts sont dans le rapport CSV.
# en: No successful measured trial in this run.
html-no-trial = Aucun essai mesuré réussi dans cette exécution.
# en: vs native [95% CI]
html-col-vs-native = rapport au natif [IC à 95 %]
# en: ↑ higher is better, ↓ lower is better; * fewer than 6 samples, the interval is min..max; ~ the interval reaches further than { $pct } from its median.
html-summary-note = ↑ plus haut vaut mieux, ↓ plus bas vaut mieux ; * moins de 6 échantillons, l’intervalle est min..max ; ~ l’intervalle s’écarte de plus de { $pct } de sa médiane.
# en: Where start-up time goes: each bar is one trial of the noop workload on the host clock, split at the phases the backend records; segment lengths are medians across trials, so the bar is the median path, not the median total.
caption-start_timeline = Où passe le temps de démarrage : chaque barre est un essai de la charge noop sur l’horloge de l’hôte, découpé aux phases qu’enregistre l’environnement ; la longueur des segments est une médiane sur les essais, si bien que la barre est le chemin médian, pas le total médian.
# en: Each dot is a backend's median divided by native's median for the same metric; the whisker is its bootstrap confidence interval. At 1 (the black line) the backend is as fast as native; whether above 1 is better depends on the arrow in the label.
caption-ratio_to_native = Chaque point est la médiane d’un environnement divisée par celle du natif pour la même métrique ; la moustache est son intervalle de confiance bootstrap. À 1 (la ligne noire), l’environnement va aussi vite que le natif ; au-dessus de 1, mieux ou moins bien selon la flèche de l’étiquette.
# en: Each dot is one factor's effect on a headline metric: the median at the changed value divided by the median at the factor's first value, the other factors held fixed, measured side by side in this run; the whisker is its bootstrap interval. At 1 the setting made no difference that the run could see.
caption-factor_effects = Chaque point est l’effet d’un facteur sur une métrique principale : la médiane à la valeur modifiée divisée par la médiane à la première valeur du facteur, les autres facteurs fixés, mesurées côte à côte dans cette exécution ; la moustache est son intervalle bootstrap. À 1, le réglage n’a fait aucune différence visible pour l’exécution.
# en: The same column run twice as if it were two, interleaved: any distance of a dot or its whisker from 1 is noise. Effects and ratios closer to 1 than these whiskers reach cannot be told from noise on this host.
caption-aa_check = La même colonne exécutée deux fois comme si elle en était deux, entrelacées : tout écart d’un point ou de sa moustache à 1 est du bruit. Les effets et rapports plus proches de 1 que ces moustaches ne se distinguent pas du bruit sur cet hôte.
# en: Latency percentiles reported by the I/O workloads (p50 = typical, p99 = tail), median across trials with its confidence interval.
caption-io_latency = Centiles de latence fournis par les charges d’E/S (p50 = typique, p99 = queue), médiane sur les essais avec son intervalle de confiance.
# en: How often the guest left the CPU to the VMM in one trial, by reason. Port and MMIO exits are emulated device accesses; virtio keeps them few.
caption-vm_exits = Combien de fois l’invité a rendu le processeur au VMM pendant un essai, par raison. Les sorties de port et MMIO sont des accès à des périphériques émulés ; virtio les rend rares.

## The book's figures: captions, the figure line, and the chart titles as text alternatives

# en: *Figure `{ $name }`, from run { $run }.* { $caption }
figure-line = *Figure `{ $name }`, de l’exécution { $run }.* { $caption }
# en: Each bar is one start of a sandbox that runs the `noop` program, on the host's clock, from the moment the harness begins to the moment everything is cleaned up. Segments are the phases the backend records, each the median across trials. The black tick and whisker are the median time from start to ready and its 95% interval, the figure the text quotes, with the same n; the label repeats them.
figure-caption-start-timeline = Chaque barre est un démarrage d’un bac à sable qui exécute le programme `noop`, sur l’horloge de l’hôte, depuis l’instant où le banc d’essai commence jusqu’à celui où tout est nettoyé. Les segments sont les phases qu’enregistre l’environnement, chacun étant la médiane sur les essais. Le trait noir et sa moustache sont la médiane du temps du lancement à la disponibilité et son intervalle à 95 %, le chiffre que cite le texte, avec le même n ; l’étiquette les répète.
# en: The microVM's start, phase by phase: creating the VM, its memory, loading the kernel, configuring the vCPU, then the guest kernel's own boot until the agent's first marker, the workload, power-off and teardown. Segment lengths are medians across trials.
figure-caption-vm-boot-timeline = Le démarrage de la micro-VM, phase par phase : création de la VM, de sa mémoire, chargement du noyau, configuration du vCPU, puis l’amorçage propre du noyau invité jusqu’au premier marqueur de l’agent, la charge, l’extinction et le démontage. Les longueurs des segments sont des médianes sur les essais.
# en: The container's start, phase by phase: cgroup, clone with new namespaces, joining the cgroup, setting up the namespaces, the root filesystem (a copy of a mount namespace prepared once per run), exec of the agent, then the workload, exit and cleanup. Segment lengths are medians across trials.
figure-caption-container-start-timeline = Le démarrage du conteneur, phase par phase : groupe de contrôle, clone avec de nouveaux espaces de noms, entrée dans le groupe de contrôle, mise en place des espaces de noms, le système de fichiers racine (copie d’un espace de noms de montage préparé une fois par exécution), exec de l’agent, puis la charge, la sortie et le nettoyage. Les longueurs des segments sont des médianes sur les essais.
# en: Each dot is a backend's median divided by native's median for the same metric; the whisker is its 95% bootstrap interval. On the black line (1) the backend is exactly as fast as native. The arrow after each label says whether higher (↑) or lower (↓) is better, so a dot right of the line is worse for ↓ metrics and better for ↑ ones.
figure-caption-cpu-memory-ratio = Chaque point est la médiane d’un environnement divisée par celle du natif pour la même métrique ; la moustache est son intervalle bootstrap à 95 %. Sur la ligne noire (1), l’environnement va exactement aussi vite que le natif. La flèche après chaque étiquette dit si plus haut (↑) ou plus bas (↓) vaut mieux : un point à droite de la ligne est donc moins bon pour les métriques ↓ et meilleur pour les métriques ↑.
# en: The same CPU and memory workloads, the same sizes, in one run: each dot is a backend's median divided by native's, with its 95% bootstrap interval, on a log scale. The container and the VM sit near 1; the emulator (QEMU without acceleration, `qemu-tcg`) sits one to two orders of magnitude away, because every guest instruction is first translated by software.
figure-caption-emulation-ratio = Les mêmes charges processeur et mémoire, les mêmes tailles, dans une même exécution : chaque point est la médiane d’un environnement divisée par celle du natif, avec son intervalle bootstrap à 95 %, sur une échelle logarithmique. Le conteneur et la VM se tiennent près de 1 ; l’émulateur (QEMU sans accélération, `qemu-tcg`) se tient à un ou deux ordres de grandeur, parce que chaque instruction de l’invité est d’abord traduite par du logiciel.
# en: Storage and loopback network metrics as ratio to native, read like the CPU figure: 1 is native, whiskers are 95% intervals, the arrow says which direction is better.
figure-caption-io-ratio = Les métriques de stockage et de réseau par bouclage en rapport au natif, à lire comme la figure processeur : 1 est le natif, les moustaches sont des intervalles à 95 %, la flèche dit quel sens vaut mieux.
# en: Latency of single I/O operations: p50 is the typical operation, p99 the slowest one in a hundred. Bars are medians across trials, whiskers their 95% intervals; shorter is better.
figure-caption-io-latency = Latence d’opérations d’E/S individuelles : p50 est l’opération typique, p99 la plus lente sur cent. Les barres sont des médianes sur les essais, les moustaches leurs intervalles à 95 % ; plus court vaut mieux.
# en: How many times per trial the guest stopped and handed the CPU to the VMM, by reason. Every `io_out.serial` is one byte of console output written to an emulated serial port.
figure-caption-vm-exits = Combien de fois par essai l’invité s’est arrêté et a rendu le processeur au VMM, par raison. Chaque `io_out.serial` est un octet de sortie console écrit sur un port série émulé.
# en: VM exits per operation of each workload, while the workload ran: per 4 KiB random read and write, per MiB written and read, per system call, per page fault. Each bar is split by why the guest left: the **device** part (port and MMIO accesses that reached the VMM, and virtio queue notifications KVM completed through an ioeventfd) follows from the driver's protocol and is the same on any host; the **time-driven** part (timer and other interrupts, halts, interrupt windows) grows with how long the workload took, so a slow or emulated run counts far more of it than hardware would; the rest is mostly nested-page faults that KVM handled itself. A run from before isolab split exits by cause shows where they were handled instead (inside KVM, or in the VMM).
figure-caption-vm-exits-per-op = Sorties de VM par opération de chaque charge, pendant que la charge tournait : par lecture et par écriture aléatoire de 4 Kio, par Mio écrit et lu, par appel système, par défaut de page. Chaque barre est découpée selon la raison du départ de l’invité : la part **périphérique** (accès aux ports et en MMIO qui ont atteint le VMM, et notifications de file virtio que KVM a traitées par un ioeventfd) découle du protocole du pilote et est la même sur tout hôte ; la part **liée au temps** (interruptions de minuterie et autres, arrêts HLT, fenêtres d’interruption) croît avec la durée de la charge, si bien qu’une exécution lente ou émulée en compte bien plus que le matériel ; le reste est surtout des défauts de page imbriqués que KVM a traités lui-même. Une exécution antérieure au découpage des sorties par cause montre plutôt où elles ont été traitées (dans KVM ou dans le VMM).
# en: Each dot is what changing one setting did to a headline metric, the other settings held fixed: the median at the new value divided by the median at the first, both measured side by side in one run, interleaved. The whisker is its 95% bootstrap interval; at 1 the setting made no difference the run could see.
figure-caption-factor-effects = Chaque point est ce qu’a produit le changement d’un réglage sur une métrique principale, les autres réglages fixés : la médiane à la nouvelle valeur divisée par la médiane à la première, toutes deux mesurées côte à côte dans une même exécution, entrelacées. La moustache est son intervalle bootstrap à 95 % ; à 1, le réglage n’a fait aucune différence visible pour l’exécution.
# en: The same configuration run twice as if it were two, interleaved (an A/A check). Nothing differs between the two, so how far a whisker reaches from 1 is the smallest difference this host could resolve during the run: read every other ratio against it.
figure-caption-aa-check = La même configuration exécutée deux fois comme s’il s’agissait de deux, entrelacées (un contrôle A/A). Rien ne diffère entre les deux, si bien que la distance à laquelle une moustache s’écarte de 1 est la plus petite différence que cet hôte a pu distinguer pendant l’exécution : lisez chaque autre rapport à sa lumière.
# en: Start-up of one noop trial, by phase (medians across trials)
figure-title-start-timeline = Démarrage d’un essai noop, par phase (médianes sur les essais)
# en: Booting the microVM: phases of one noop trial (medians across trials)
figure-title-vm-boot-timeline = Amorçage de la micro-VM : phases d’un essai noop (médianes sur les essais)
# en: Starting a container: phases of one noop trial (medians across trials)
figure-title-container-start-timeline = Démarrage d’un conteneur : phases d’un essai noop (médianes sur les essais)
# en: CPU, memory and kernel entry: each metric as ratio to native (95% intervals)
figure-title-cpu-memory-ratio = Processeur, mémoire et entrée dans le noyau : chaque métrique en rapport au natif (intervalles à 95 %)
# en: Container, VM and the emulator (QEMU TCG) against native: CPU and memory (95% intervals)
figure-title-emulation-ratio = Conteneur, VM et émulateur (QEMU TCG) face au natif : processeur et mémoire (intervalles à 95 %)
# en: Storage and network: each metric as ratio to native (95% intervals)
figure-title-io-ratio = Stockage et réseau : chaque métrique en rapport au natif (intervalles à 95 %)
# en: I/O latency: p50 and p99 per backend (medians across trials, 95% intervals)
figure-title-io-latency = Latence des E/S : p50 et p99 par environnement (médianes sur les essais, intervalles à 95 %)
# en: VM exits per trial, by reason
figure-title-vm-exits = Sorties de VM par essai, par raison
# en: VM exits per operation, by cause
figure-title-vm-exits-per-op = Sorties de VM par opération, par cause
# en: The effect of each varied setting on the headline metrics (95% intervals)
figure-title-factor-effects = Effet de chaque réglage varié sur les métriques principales (intervalles à 95 %)
# en: A/A check: the same column twice, A'/A (95% intervals)
figure-title-aa-check = Contrôle A/A : la même colonne deux fois, A'/A (intervalles à 95 %)
# en: the run has no qemu-tcg trial (`isolab run --backend native,container,vm,qemu-tcg`)
figure-no-emulator = l’exécution n’a aucun essai qemu-tcg (`isolab run --backend native,container,vm,qemu-tcg`)

## What the inspect workload saw (chapter 4)

# en: what the program sees
inspect-what = ce que voit le programme
# en: kernel release (`uname -r`)
inspect-kernel = version du noyau (`uname -r`)
# en: boot_id
inspect-boot-id = boot_id
# en: its own PID
inspect-pid = son propre PID
# en: processes it can see (`/proc`)
inspect-processes = processus qu’il peut voir (`/proc`)
# en: hostname
inspect-hostname = nom d’hôte
# en: network interfaces
inspect-interfaces = interfaces réseau
# en: mounts
inspect-mounts = montages
# en: CPUs it may run on
inspect-cpus = processeurs sur lesquels il peut tourner
# en: memory it is told about (MemTotal)
inspect-memory = mémoire qu’on lui annonce (MemTotal)
# en: its cgroup (`/proc/self/cgroup`)
inspect-cgroup = son groupe de contrôle (`/proc/self/cgroup`)
# en: same kernel as the host? (boot_id equal)
inspect-same-kernel = même noyau que l’hôte ? (boot_id égal)
# en: yes
yes = oui
# en: no
no = non

## The workbook's answer keys

# en: **{ $backend }** runs on kernel `{ $release }` with boot_id `{ $boot-id }`; the host's kernel is `{ $host-kernel }` with boot_id `{ $host-boot-id }`: { $verdict }
answer-kernel = **{ $backend }** tourne sur le noyau `{ $release }` avec le boot_id `{ $boot-id }` ; le noyau de l’hôte est `{ $host-kernel }` avec le boot_id `{ $host-boot-id }` : { $verdict }
# en: **the same kernel as the host** (a view, not a machine)
answer-kernel-shared = **le même noyau que l’hôte** (une vue, pas une machine)
# en: **a kernel of its own** (it booted its own)
answer-kernel-own = **un noyau à elle** (elle a amorcé le sien)
# en: the program is PID { $pid } and sees { $processes } process(es); its network interfaces: { $interfaces }
answer-pid = le programme est le PID { $pid } et voit { $processes } processus ; ses interfaces réseau : { $interfaces }
# en: it may run on { $cpus } CPU(s) and is told about { $memory } of memory; the host has { $host-cores } cores and { $host-memory }
answer-resources = il peut tourner sur { $cpus } processeur(s) et on lui annonce { $memory } de mémoire ; l’hôte a { $host-cores } cœurs et { $host-memory }
# en: { $backend }: { $value }
answer-start = { $backend } : { $value }
# en: from fastest to slowest start: { $order }
answer-start-order = du démarrage le plus rapide au plus lent : { $order }
# en: { $slow } took { $factor } times as long as { $fast } (ratio of the medians)
answer-start-factor = { $slow } a mis { $factor } fois plus de temps que { $fast } (rapport des médianes)
# en: the longest phase of the { $backend } start was `{ $phase }`, { $duration }: { $meaning }
answer-longest-phase = la phase la plus longue du démarrage de { $backend } a été `{ $phase }`, { $duration } : { $meaning }
# en: { $backend }: { $mib } per idle instance ({ $how }), so { $per-gib } idle instances per GiB
answer-memory = { $backend } : { $mib } par instance inactive ({ $how }), soit { $per-gib } instances inactives par Gio
# en: VM exits per 4 KiB random read: { $value }
answer-exits-per-read = sorties de VM par lecture aléatoire de 4 Kio : { $value }
# en: { $backend }, `{ $metric }`: { $value }
answer-ratio = { $backend }, `{ $metric }` : { $value }
# en: : { $verdict }
answer-verdict = { "\u00A0" }: { $verdict }
# en: **above native**, beyond the noise of this run (the interval excludes 1)
answer-above = **au-dessus du natif**, au-delà du bruit de cette exécution (l’intervalle exclut 1)
# en: **below native**, beyond the noise of this run (the interval excludes 1)
answer-below = **en dessous du natif**, au-delà du bruit de cette exécution (l’intervalle exclut 1)
# en: **no difference this run could detect** (the interval includes 1)
answer-no-difference = **aucune différence que cette exécution ait pu détecter** (l’intervalle contient 1)
# en: the container's system-call filter: { $seccomp }; its user namespace: { $userns }; the VMM's filters: { $vm-seccomp }
answer-filter = le filtre d’appels système du conteneur : { $seccomp } ; son espace de noms user : { $userns } ; les filtres du VMM : { $vm-seccomp }

## Factor effects, the A/A check, the emulation and guest-memory tables, the runs

# en: { $ratio } [{ $lo }–{ $hi }], n={ $from }/{ $to }
ratio-n = { $ratio } [{ $lo }–{ $hi }], n = { $from }/{ $to }
# en: run { $run } varied no setting side by side; `isolab run --factor NAME=V1,V2` does
effects-none = l’exécution { $run } n’a fait varier aucun réglage côte à côte ; `isolab run --factor NAME=V1,V2` le fait
# en: | setting | backend | held fixed | change | workload | metric | ratio [95% CI] |
effects-header = | réglage | environnement | fixés | changement | charge | métrique | rapport [IC à 95 %] |
# en: A/A noise
effects-aa-column = bruit A/A
# en: run { $run } had no A/A check; `isolab run --aa native` runs one
aa-none = l’exécution { $run } n’avait pas de contrôle A/A ; `isolab run --aa native` en fait un
# en: A/A check ({ $b } / { $a }, the same column run twice, interleaved): differences smaller than { $floor } cannot be told from noise on this host now (median over { $metrics } headline metrics of how far the A'/A interval reaches from 1; widest { $widest } for { $workload } { $metric }).
aa-sentence = Contrôle A/A ({ $b } / { $a }, la même colonne exécutée deux fois, entrelacée) : les différences inférieures à { $floor } ne se distinguent pas du bruit sur cet hôte en ce moment (médiane, sur { $metrics } métriques principales, de l’écart de l’intervalle A'/A à 1 ; le plus large est { $widest } pour { $workload } { $metric }).
# en: A/A check ({ $b } / { $a }): no headline metric has samples in both copies, so there is no noise floor for this run.
aa-sentence-none = Contrôle A/A ({ $b } / { $a }) : aucune métrique principale n’a d’échantillons dans les deux copies, il n’y a donc pas de plancher de bruit pour cette exécution.
# en: | workload | metric | A'/A [95% CI] | resolves |
aa-header = | charge | métrique | A'/A [IC à 95 %] | distingue |
# en: This book rests on { $n } runs, each described on its own; no figure divides a number of one run by a number of the other unless both measured the workload with the same parameters.
method-runs = Ce livre repose sur { $n } exécutions, chacune décrite pour elle-même ; aucun chiffre ne divise un nombre de l’une par un nombre de l’autre, à moins que les deux n’aient mesuré la charge avec les mêmes paramètres.
# en: **Run { $run }** (the book's { $role } figures): { $methodology }
method-run-item = **Exécution { $run }** (les chiffres { $role } du livre) : { $methodology }
# en: parameters in run { $run }
method-params-column = paramètres dans l’exécution { $run }
# en: differs
method-differs = diffèrent
# en: not run
method-not-run = non exécutée
# en: | workload | metric | native | container | vm | qemu-tcg (emulator) |
emulation-header = | charge | métrique | natif | conteneur | vm | qemu-tcg (émulateur) |
# en: run { $run } has none of the CPU and memory workloads
emulation-none = l’exécution { $run } n’a aucune des charges processeur et mémoire
# en: | guest RAM backed by | KVM exits to the agent's start | nested page faults to the agent's start | guest RAM touched | of it on huge pages |
memory-header = | RAM de l’invité adossée à | sorties KVM jusqu’au démarrage de l’agent | défauts de page imbriqués jusqu’au démarrage de l’agent | RAM de l’invité touchée | dont en pages énormes |
# en: not recorded (a run from before `--vm-memory`: small pages)
memory-not-recorded = non enregistré (une exécution antérieure à `--vm-memory` : petites pages)
# en: This run backed guest RAM one way; the others are a run away: { $commands }.
memory-others = Cette exécution a adossé la RAM de l’invité d’une seule façon ; les autres sont à une exécution près : { $commands }.

## Factors, and the published study's note

# en: and
word-and = et
# en: or
word-or = ou
# en: no backend of the run
factors-no-backend = aucun environnement de l’exécution
# en: { $factor } ({ $values }) on { $backends }
factors-item = { $factor } ({ $values }) sur { $backends }
# en: , not crossed with { $backends }
factors-not-crossed = , non croisé avec { $backends }
# en: Factors: { $factors }. Each combination is a column, interleaved with the others in every repetition; an effect is the ratio to the factor's first value.
factors-sentence = Facteurs : { $factors }. Chaque combinaison est une colonne, entrelacée avec les autres à chaque répétition ; un effet est le rapport à la première valeur du facteur.
# en: Ratios are sandbox / native; theirs are quoted from { $source }, not measured here.
published-note = Les rapports sont bac à sable / natif ; les leurs sont cités d’après { $source }, non mesurés ici.
# en: none
params-none = aucun

## Precision of the headline intervals (above the summary table)

# en: the --until-ci rule, { $pct }
precision-rule = la règle --until-ci, { $pct }
# en: Precision: { $narrow } of { $total } headline intervals (each workload's primary metrics, every column) lie within { $rule } of their median
precision-within = Précision : { $narrow } intervalles principaux sur { $total } (les métriques premières de chaque charge, dans chaque colonne) tiennent à { $rule } de leur médiane
# en: { $workload } { $metric } on { $column } ({ $spread }, n={ $n })
precision-item = { $workload } { $metric } sur { $column } ({ $spread }, n = { $n })
# en: median 0
precision-median-zero = médiane nulle
# en: { " " }and { $more } more
precision-more = { " " }et { $more } autres
# en: ; { $wide } are wider (marked ~): { $list }{ $more }.
precision-wider = { "\u202F" }; { $wide } sont plus larges (marqués ~) : { $list }{ $more }.
# en: More repetitions narrow them: --until-ci 5% adds them by rule.
precision-advice = Davantage de répétitions les resserrent : --until-ci 5% en ajoute selon une règle.
# en: { $lo } to { $hi }
precision-span = { $lo } à { $hi }
# en: --until-ci { $pct }: { $stopped } after { $rounds } added round(s); { $span } measured repetitions per column and workload (caps: { $max-reps } repetitions, { $max-wall }).
precision-until-ci = --until-ci { $pct } : { $stopped } après { $rounds } tour(s) ajouté(s) ; { $span } répétitions mesurées par colonne et par charge (plafonds : { $max-reps } répétitions, { $max-wall }).
# en: Did not converge: { $names }.
precision-not-converged = N’ont pas convergé : { $names }.
# en: { $workload } { $metric } on { $column }
precision-no-sample-item = { $workload } { $metric } sur { $column }
# en: Headline metrics without any successful sample (not counted): { $list }.
precision-no-samples = Métriques principales sans aucun échantillon réussi (non comptées) : { $list }.

## The charts' own words (titles, axes, legends, labels), in the SVG files and the HTML report

# en: chart { $name } not drawn: { $why }
chart-not-drawn = graphique { $name } non dessiné : { $why }
# en: Start-up timeline of one noop trial, by phase (medians across trials)
chart-title-timeline = Chronologie du démarrage d’un essai noop, par phase (médianes sur les essais)
# en: no successful measured `noop` trial with a timeline (add the noop workload to the suite)
chart-no-timeline = aucun essai `noop` mesuré réussi avec une chronologie (ajoutez la charge noop à la suite)
# en: time since the trial started (ms, host clock); each segment ends at the phase named in the legend; black: median start-to-ready with its 95% interval
chart-timeline-axis = temps depuis le début de l’essai (ms, horloge de l’hôte) ; chaque segment se termine à la phase nommée dans la légende ; en noir : médiane du lancement à la disponibilité, avec son intervalle à 95 %
# en: segment ends at phase:
chart-timeline-legend = le segment se termine à la phase :
# en: ready: { $median } ms [{ $lo }–{ $hi }], n = { $n }
chart-ready = prêt : { $median } ms [{ $lo }–{ $hi }], n = { $n }
# en: { " " }(phases: { $n } trials)
chart-ready-phases = { " " }(phases : { $n } essais)
# en: Every metric as ratio to native, with { $level } intervals
chart-title-ratios = Chaque métrique en rapport au natif, avec des intervalles à { $level }
# en: no backend other than native has successful trials to compare with native
chart-no-ratios = aucun environnement autre que le natif n’a d’essais réussis à comparer au natif
# en: ratio = backend median / native median (log scale; native = 1). ↑: higher is better, ↓: lower is better
chart-ratios-axis = rapport = médiane de l’environnement / médiane du natif (échelle logarithmique ; natif = 1). ↑ : plus haut vaut mieux, ↓ : plus bas vaut mieux
# en: native (= 1)
chart-ratios-reference = natif (= 1)
# en: backend:
chart-legend-backend = environnement :
# en: the run varied no factor (isolab run --factor NAME=V1,V2)
chart-no-factor = l’exécution n’a fait varier aucun facteur (isolab run --factor NAME=V1,V2)
# en: Effect of each factor on the headline metrics, with { $level } intervals
chart-title-effects = Effet de chaque facteur sur les métriques principales, avec des intervalles à { $level }
# en: ratio = median at the changed value / median at the factor's first value (log scale). ↑: higher is better, ↓: lower is better
chart-effects-axis = rapport = médiane à la valeur modifiée / médiane à la première valeur du facteur (échelle logarithmique). ↑ : plus haut vaut mieux, ↓ : plus bas vaut mieux
# en: no effect (= 1)
chart-effects-reference = aucun effet (= 1)
# en: change:
chart-effects-legend = changement :
# en: the run had no A/A check (isolab run --aa COLUMN)
chart-no-aa = l’exécution n’avait pas de contrôle A/A (isolab run --aa COLUMN)
# en: no headline metric has samples in both A/A copies
chart-aa-no-samples = aucune métrique principale n’a d’échantillons dans les deux copies A/A
# en: A/A check: the same column twice; differences under { $pct } are noise here
chart-title-aa-floor = Contrôle A/A : la même colonne deux fois ; les différences inférieures à { $pct } sont du bruit ici
# en: A/A check: the same column twice
chart-title-aa = Contrôle A/A : la même colonne deux fois
# en: ratio = median(A') / median(A) (log scale; identical columns, so any distance from 1 is noise)
chart-aa-axis = rapport = médiane(A') / médiane(A) (échelle logarithmique ; colonnes identiques, donc tout écart à 1 est du bruit)
# en: columns:
chart-aa-legend = colonnes :
# en: no I/O workload reported latency percentiles (metrics ending in _p50/_p99)
chart-no-latency = aucune charge d’E/S n’a fourni de centiles de latence (métriques finissant par _p50/_p99)
# en: I/O latency percentiles per backend (median across trials, { $level } whiskers)
chart-title-latency = Centiles de latence des E/S par environnement (médiane sur les essais, moustaches à { $level })
# en: latency ({ $unit }; lower is better)
chart-latency-axis = latence ({ $unit } ; plus bas vaut mieux)
# en: no network workload across the boundary reported a latency (net-rr, net-crr, net-udp-rr)
chart-no-net-latency = aucune charge réseau traversant la frontière n’a fourni de latence (net-rr, net-crr, net-udp-rr)
# en: Network request/response latency per backend (median across trials, { $level } whiskers)
chart-title-net-latency = Latence requête-réponse du réseau par environnement (médiane sur les essais, moustaches à { $level })
# en: no network workload across the boundary reported a throughput (net-stream)
chart-no-net-throughput = aucune charge réseau traversant la frontière n’a fourni de débit (net-stream)
# en: Network throughput per backend, each direction (median across trials, { $level } whiskers)
chart-title-net-throughput = Débit réseau par environnement, dans chaque sens (médiane sur les essais, moustaches à { $level })
# en: throughput ({ $unit }; higher is better)
chart-throughput-axis = débit ({ $unit } ; plus haut vaut mieux)
# en: no sample has VM exit counts (metrics named exits.*)
chart-no-exits = aucun échantillon n’a de décompte de sorties de VM (métriques exits.*)
# en: other
chart-exits-other = autres
# en: VM exits per trial, by exit reason (median across trials)
chart-title-exits = Sorties de VM par essai, par raison (médiane sur les essais)
# en: exits to the VMM during one trial (boot, workload and shutdown)
chart-exits-axis = sorties vers le VMM pendant un essai (amorçage, charge et extinction)
# en: exits
chart-exits-unit = sorties
# en: exit reason:
chart-exits-legend = raison de la sortie :
# en: per 4 KiB I/O
chart-op-4k_io = par E/S de 4 Kio
# en: per 4 KiB random read
chart-op-4k_read = par lecture aléatoire de 4 Kio
# en: per 4 KiB random write
chart-op-4k_write = par écriture aléatoire de 4 Kio
# en: per MiB moved
chart-op-mib_io = par Mio déplacé
# en: per MiB written
chart-op-mib_write = par Mio écrit
# en: per MiB read
chart-op-mib_read = par Mio lu
# en: per fsync
chart-op-fsync = par fsync
# en: per system call
chart-op-syscall = par appel système
# en: per page fault
chart-op-page_fault = par défaut de page
# en: per process started
chart-op-spawn = par processus lancé
# en: per sleep
chart-op-sleep = par mise en sommeil
# en: per { $op }
chart-op-other = par { $op }
# en: device (port, MMIO, queue notify)
chart-part-device = périphérique (port, MMIO, notification de file)
# en: time-driven (timer, halt, interrupt window)
chart-part-time = liée au temps (minuterie, HLT, fenêtre d’interruption)
# en: other (nested page faults, MSR, CPUID)
chart-part-other = autres (défauts de page imbriqués, MSR, CPUID)
# en: handled inside KVM
chart-part-kvm = traitées dans KVM
# en: reached isolab's VMM
chart-part-vmm = parvenues au VMM d’isolab
# en: no VM sample has exits per operation (KVM statistics of the workload window)
chart-no-exits-per-op = aucun échantillon de VM n’a de sorties par opération (statistiques KVM de la fenêtre de la charge)
# en: VM exits per operation of the workload (median across trials)
chart-title-exits-per-op = Sorties de VM par opération de la charge (médiane sur les essais)
# en: exits per operation (each row names its operation)
chart-exits-per-op-axis = sorties par opération (chaque ligne nomme son opération)
# en: exits/op
chart-exits-per-op-unit = sorties/op
# en: why the guest exited (only the device part carries over to other hosts):
chart-exits-per-op-legend-cause = pourquoi l’invité est sorti (seule la part périphérique se transpose à d’autres hôtes) :
# en: where the exit was handled:
chart-exits-per-op-legend-where = où la sortie a été traitée :

## The terminal's factor-effects and A/A tables

# en: factor
term-col-factor = facteur
# en: held fixed
term-col-held-fixed = fixés
# en: change
term-col-change = changement
# en: ratio [95% CI]
term-col-ratio-ci = rapport [IC à 95 %]
# en: A/A [95% CI]
term-col-aa-ci = A/A [IC à 95 %]
# en: A'/A [95% CI]
term-col-aa-ratio = A'/A [IC à 95 %]
# en: resolves
term-col-resolves = distingue
# en: (no headline metric was measured at two values of a factor)
term-no-effects = (aucune métrique principale n’a été mesurée à deux valeurs d’un facteur)
# en: Factor effects: median at the changed value / median at the factor's first value, the other factors held fixed, with a 95% bootstrap interval; headline metrics (every metric: isolab report --format json).
term-effects-note = Effets des facteurs : médiane à la valeur modifiée / médiane à la première valeur du facteur, les autres facteurs fixés, avec un intervalle bootstrap à 95 % ; métriques principales (toutes les métriques : isolab report --format json).
# en: A/A: the same metric's A'/A interval, the noise floor beside each effect.
term-effects-aa-note = A/A : l’intervalle A'/A de la même métrique, le plancher de bruit à côté de chaque effet.
# en: A/A check: { $b } / { $a }, headline metrics (resolves: how far the interval reaches from 1).
term-aa-note = Contrôle A/A : { $b } / { $a }, métriques principales (distingue : l’écart de l’intervalle à 1).
# en: Factor effects
html-effects = Effets des facteurs
# en: A/A check
html-aa = Contrôle A/A

## Density (issue 13) and network (issue 16) text
# en: no density run: measure one with `isolab density`, then build the book with `isolab book --density RUN_DIR`
density-no-run = pas d’exécution de densité : mesurez-en une avec `isolab density`, puis construisez le livre avec `isolab book --density RUN_DIR`
# en: host.peak_rss: the process's peak resident set (native: the agent; VM: the VMM process)
meter-peak-rss = host.peak_rss : le pic de mémoire résidente du processus (natif : l’agent ; VM : le processus du VMM)
# en: host.cgroup_*: what the sandbox's memory cgroup (the container's, or the VMM process's) charged, whose peak moves in per-CPU charge batches and is not a footprint
meter-cgroup = host.cgroup_* : ce que le groupe de contrôle mémoire du bac à sable (celui du conteneur, ou celui du processus du VMM) a comptabilisé, dont le pic avance par lots de comptabilisation par CPU et n’est pas une empreinte
# en: host.guest_ram_touched: guest RAM the VM's guest touched
meter-guest-ram-touched = host.guest_ram_touched : la RAM de l’invité que l’invité de la VM a touchée
# en: host.vmm_overhead: the VMM process's memory outside guest RAM
meter-vmm-overhead = host.vmm_overhead : la mémoire du processus du VMM hors de la RAM de l’invité
# en: Memory figures of this run are each backend's own meter ({ $meters }), not one quantity: never compare them across backends. `isolab density` measures memory per instance with one meter for every backend (the host's MemAvailable drop over N instances, and PSS).
caveat-memory-meters = Les chiffres de mémoire de cette exécution viennent chacun du compteur propre à son environnement ({ $meters }), pas d’une seule grandeur : ne les comparez jamais d’un environnement à l’autre. `isolab density` mesure la mémoire par instance avec un seul compteur pour tous les environnements (la baisse de MemAvailable de l’hôte pour N instances, et la PSS).
# en: CPU times come from two meters, shown under their own names and never divided by each other: host.cpu_* is the process's CPU time from rusage (native: the agent; VM: the VMM process, its vCPU threads included); host.cgroup_cpu_* is the container's cgroup CPU accounting.
caveat-cpu-meters = Les temps CPU viennent de deux compteurs, montrés sous leurs propres noms et jamais divisés l’un par l’autre : host.cpu_* est le temps CPU du processus selon rusage (natif : l’agent ; VM : le processus du VMM, ses fils de vCPU compris) ; host.cgroup_cpu_* est la comptabilité CPU du groupe de contrôle du conteneur.
# en: Host memory per instance against the number of instances
figure-title-density-memory = Mémoire de l’hôte par instance selon le nombre d’instances
# en: Host memory per instance against the number of instances running, the same meter for every backend. Filled points: the host's MemAvailable drop divided by N (median over the rounds, whiskers its 95% interval, cut at the edge where a busy host's noise dwarfs a few instances); hollow points on dashed lines: PSS per instance; thin line: the marginal memory (the slope over every N).
figure-caption-density-memory = Mémoire de l’hôte par instance selon le nombre d’instances en marche, avec le même compteur pour tous les environnements. Points pleins : la baisse de MemAvailable de l’hôte divisée par N (médiane sur les tours, moustaches : son intervalle à 95 %, coupées au bord où le bruit d’un hôte occupé écrase quelques instances) ; points creux sur lignes tiretées : la PSS par instance ; trait fin : la mémoire marginale (la pente sur tous les N).
# en: What grew in /proc/meminfo per instance
figure-title-density-components = Ce qui a augmenté dans /proc/meminfo par instance
# en: What grew in /proc/meminfo per instance at each backend's largest N: anonymous memory is the processes' own; page tables, kernel stacks, slab and per-CPU memory are what the kernel keeps for them (namespaces, cgroups).
figure-caption-density-components = Ce qui a augmenté dans /proc/meminfo par instance au plus grand N de chaque environnement : la mémoire anonyme est celle des processus eux-mêmes ; les tables de pages, les piles noyau, le slab et la mémoire par CPU sont ce que le noyau garde pour eux (espaces de noms, groupes de contrôle).
# en: Start latency against the number of instances
figure-title-density-start = Latence de démarrage selon le nombre d’instances
# en: Start latency against the number of instances: from the start call to the agent's ready marker, p50 (solid) and p99 (dashed) over every instance of every round.
figure-caption-density-start = Latence de démarrage selon le nombre d’instances : de l’appel de démarrage au marqueur « prêt » de l’agent, p50 (trait plein) et p99 (tirets) sur toutes les instances de tous les tours.
# en: { $mib } per instance [95% CI { $lo }–{ $hi }]
density-per-instance-ci = { $mib } par instance [IC à 95 % { $lo }–{ $hi }]
# en: container floor
density-backend-floor = plancher du conteneur
# en: { $backend } (emulated)
density-backend-emulated = { $backend } (émulée)
# en: all
density-parallel-all = toutes
# en: unknown backend { $backend }
density-unknown-backend = environnement inconnu { $backend }
# en: { $backend } was not in density run { $run }
density-not-in-run = { $backend } ne faisait pas partie de l’exécution de densité { $run }
# en: idle (no working set)
density-ws-idle = inactif (sans ensemble de travail)
# en: a working set of { $size } written
density-ws-written = un ensemble de travail de { $size } écrit
# en: the host had run = { $run }
density-ksm-host-run = l’hôte avait run = { $run }
# en: this kernel has no KSM
density-ksm-host-none = ce noyau n’a pas KSM
# en: left as the host had it ({ $host })
density-ksm-host = laissé tel que l’hôte l’avait ({ $host })
# en: on for the run ({ $host }, put back after); a VMM marks its guest's RAM mergeable, so KSM can share identical guest pages between VMs (each round waits until two full scans in a row barely change what it shares, and reports what its host-wide counters grew by); a native process or a container marks no memory mergeable, so KSM finds nothing of theirs
density-ksm-on = activé pour l’exécution ({ $host }, rétabli après) ; un VMM marque la RAM de son invité comme fusionnable, donc KSM peut partager les pages identiques des invités entre VM (chaque tour attend que deux balayages complets de suite ne changent presque plus ce qu’il partage, et rapporte de combien ses compteurs globaux ont augmenté) ; un processus natif ou un conteneur ne marque aucune mémoire comme fusionnable, donc KSM ne trouve rien chez eux
# en: off for the run ({ $host }, put back after)
density-ksm-off = désactivé pour l’exécution ({ $host }, rétabli après)
# en: Each instance runs isolab's agent in its `wait` mode: { $ws }, then it reports ready and waits. For each backend and N ({ $counts }), { $rounds }: the host's /proc/meminfo is read just before the first start (median of several samples, each field on its own), N instances start ({ $parallel } at a time), and once all are ready and have settled { $settle } the host is read again; the drop of MemAvailable is what the N instances cost the host, whatever kind of memory it is. Every instance's processes' PSS (smaps_rollup) is summed beside it: PSS counts a page shared by k processes as 1/k in each, but misses what the kernel keeps for an instance (namespaces, cgroups, page tables). The marginal memory per instance is the slope of the drop against N (least squares over every round, 95% interval by resampling rounds within each N) and the fixed cost its intercept; instances that fit = (MemAvailable − { $headroom } of MemTotal − fixed cost) ÷ marginal. A container's memory cgroup's charge is shown beside as the cgroup's view; it is not a footprint (it counts page cache charged to whoever touched it first, and on cgroup v1 moves in per-CPU batches of 64 pages). Start latency is from the start call to the agent's ready marker, for every instance of the storm and for { $beside } more started one at a time beside N; teardown from the first kill to the last reap with every cgroup removed; then the time until MemAvailable is back at its baseline. KSM: { $ksm }.
density-method = Chaque instance exécute l’agent d’isolab dans son mode `wait` : { $ws }, puis elle signale qu’elle est prête et attend. Pour chaque environnement et chaque N ({ $counts }), { $rounds } : le /proc/meminfo de l’hôte est lu juste avant le premier démarrage (médiane de plusieurs lectures, chaque champ séparément), N instances démarrent ({ $parallel } à la fois), et une fois toutes prêtes et stabilisées pendant { $settle }, l’hôte est relu ; la baisse de MemAvailable est ce que les N instances coûtent à l’hôte, quelle que soit la sorte de mémoire. La PSS (smaps_rollup) des processus de chaque instance est additionnée à côté : la PSS compte une page partagée par k processus pour 1/k dans chacun, mais ignore ce que le noyau garde pour une instance (espaces de noms, groupes de contrôle, tables de pages). La mémoire marginale par instance est la pente de la baisse en fonction de N (moindres carrés sur tous les tours, intervalle à 95 % par rééchantillonnage des tours à N fixé) et le coût fixe son ordonnée à l’origine ; instances qui tiennent = (MemAvailable − { $headroom } de MemTotal − coût fixe) ÷ marginale. La charge du groupe de contrôle mémoire d’un conteneur est montrée à côté comme la vue du groupe de contrôle ; ce n’est pas une empreinte (elle compte le cache de pages au compte du premier qui l’a touché et, en cgroup v1, avance par lots de 64 pages par CPU). La latence de démarrage va de l’appel de démarrage au marqueur « prêt » de l’agent, pour chaque instance de la rafale et pour { $beside } de plus démarrées une à une à côté des N ; l’arrêt, du premier kill à la dernière récupération, tous les groupes de contrôle supprimés ; puis le temps jusqu’au retour de MemAvailable à sa valeur de départ. KSM : { $ksm }.
# en: { $value }, emulated: not a performance figure
density-emulated-time = { $value }, émulé : pas un chiffre de performance
# en: { $value }, in the emulated machine
density-emulated-size = { $value }, dans la machine émulée
# en: no instance of { $backend } got ready
density-none-ready = aucune instance de { $backend } n’a été prête
# en: at N = { $n }
density-at-n = à N = { $n }
# en: fewer than two Ns measured
density-few-ns = moins de deux N mesurés
# en: no positive marginal memory
density-no-marginal = pas de mémoire marginale positive
# en: no bound
density-no-bound = sans borne
# en: { $instances } instances [{ $lo }–{ $hi }] with { $headroom } of the host's memory kept free
density-fit = { $instances } instances [{ $lo }–{ $hi }] en gardant libre { $headroom } de la mémoire de l’hôte
# en: only a container has a cgroup of its own
density-cgroup-only-container = seul un conteneur a son propre groupe de contrôle
# en: no cgroup
density-no-cgroup = pas de groupe de contrôle
# en: { $mib } per instance { $at }
density-cgroup = { $mib } par instance { $at }
# en: no start
density-no-start = aucun démarrage
# en: { $ms } { $at } ({ $parallel } at a time, n = { $n })
density-start = { $ms } { $at } ({ $parallel } à la fois, n = { $n })
# en: no start beside N was measured
density-no-beside = aucun démarrage à côté des N n’a été mesuré
# en: { $ms } beside N = { $count } running (n = { $n })
density-beside = { $ms } à côté de N = { $count } en marche (n = { $n })
# en: no teardown was timed
density-no-teardown = aucun arrêt n’a été chronométré
# en: { $ms } for { $count } instances
density-teardown = { $ms } pour { $count } instances
# en: MemAvailable was not back within the wait
density-no-recovery = MemAvailable n’était pas revenu dans le délai d’attente
# en: only a VM has a guest and a VMM
density-vm-only = seule une VM a un invité et un VMM
# en: { $guest } of guest RAM touched and { $vmm } of the VMM's own per VM (PSS of its VMM process) { $at }
density-vm-split = { $guest } de RAM de l’invité touchée et { $vmm } propres au VMM par VM (PSS de son processus VMM) { $at }
# en: ; inside, the guest's kernel and agent used { $used } of the { $total } its kernel manages
density-vm-inside =  ; à l’intérieur, le noyau et l’agent de l’invité utilisaient { $used } des { $total } que gère son noyau
# en: KSM was not on for this run: `--ksm on`
density-ksm-not-on = KSM n’était pas activé pour cette exécution : `--ksm on`
# en: { $pages } pages merged into { $into } ({ $saved } saved) after { $after } { $at }
density-ksm = { $pages } pages fusionnées en { $into } ({ $saved } économisés) après { $after } { $at }
# en: unknown density value `{ $value }`; choose from { $choices }
density-unknown-value = valeur de densité inconnue `{ $value }` ; choisissez parmi { $choices }
# en: | backend | marginal memory per instance (MemAvailable drop vs N) | fixed cost | PSS per instance | instances that fit, { $headroom } kept free | start p50 / p99 at the largest N | teardown |
density-capacity-header = | environnement | mémoire marginale par instance (baisse de MemAvailable selon N) | coût fixe | PSS par instance | instances qui tiennent, { $headroom } gardés libres | démarrage p50 / p99 au plus grand N | arrêt |
# en: { $backend } stopped at N = { $n }: { $why }
density-stopped = { $backend } s’est arrêté à N = { $n } : { $why }
# en: From density run { $run } ({ $rounds } per N, N = { $counts }).
density-from-run = D’après l’exécution de densité { $run } ({ $rounds } par N, N = { $counts }).
# en: The container's marginal memory ({ $container } [{ $clo }–{ $chi }]) and its floor's ({ $floor } [{ $flo }–{ $fhi }]) agree within their 95% intervals.
density-floor-agree = La mémoire marginale du conteneur ({ $container } [{ $clo }–{ $chi }]) et celle de son plancher ({ $floor } [{ $flo }–{ $fhi }]) concordent à leurs intervalles à 95 % près.
# en: The container's marginal memory ({ $container } [{ $clo }–{ $chi }]) and its floor's ({ $floor } [{ $flo }–{ $fhi }]) do not agree within their 95% intervals.
density-floor-disagree = La mémoire marginale du conteneur ({ $container } [{ $clo }–{ $chi }]) et celle de son plancher ({ $floor } [{ $flo }–{ $fhi }]) ne concordent pas à leurs intervalles à 95 % près.
# en: the density run has no marginal memory for the container and its floor
density-no-floor = l’exécution de densité n’a pas de mémoire marginale pour le conteneur et son plancher
# en: { $n -> [one] { $count } round *[other] { $count } rounds
density-rounds = { $n ->
    [one] { $count } tour
   *[other] { $count } tours
}
# en: { $backend }: { $marginal } (the host's MemAvailable drop against N, the same meter for every backend); { $fit } on this host
answer-density = { $backend } : { $marginal } (la baisse de MemAvailable de l’hôte en fonction de N, le même compteur pour tous les environnements) ; { $fit } sur cet hôte
# en: this book has no density run, so these are each backend's own meter from single trials, not one quantity: measure with `isolab density` and build the book with `--density` to compare them
answer-memory-meters = ce livre n’a pas d’exécution de densité, ce sont donc les compteurs propres à chaque environnement, relevés sur des essais isolés, pas une seule grandeur : mesurez avec `isolab density` et construisez le livre avec `--density` pour les comparer
# en: density_start: { $backend } left out (emulated start times are not performance figures)
density-chart-start-left-out = density_start : { $backend } laissé de côté (les temps de démarrage émulés ne sont pas des chiffres de performance)
# en: no round was measured
density-chart-no-round = aucun tour n’a été mesuré
# en: Host memory per instance vs N (MemAvailable drop ÷ N, and PSS per instance)
density-chart-memory-title = Mémoire de l’hôte par instance selon N (baisse de MemAvailable ÷ N, et PSS par instance)
# en: instances running (N, log scale)
density-chart-memory-x = instances en marche (N, échelle log)
# en: MiB per instance
density-chart-memory-y = Mio par instance
# en: { $backend }: MemAvailable drop ÷ N
density-chart-drop = { $backend } : baisse de MemAvailable ÷ N
# en: { $backend }: PSS per instance
density-chart-pss = { $backend } : PSS par instance
# en: off the scale, drawn at the edge (MiB; the host's noise): { $listed }
density-chart-off-scale = hors échelle, dessinés au bord (Mio ; le bruit de l’hôte) : { $listed }
# en: no part of /proc/meminfo grew in any measured round
density-chart-no-growth = aucune partie de /proc/meminfo n’a augmenté dans un tour mesuré
# en: What grew in /proc/meminfo per instance (at each backend's largest N)
density-chart-components-title = Ce qui a augmenté dans /proc/meminfo par instance (au plus grand N de chaque environnement)
# en: MiB per instance (medians over the rounds; parts that shrank are left out)
density-chart-components-x = Mio par instance (médianes sur les tours ; les parties qui ont diminué sont laissées de côté)
# en: part:
density-chart-components-legend = partie :
# en: no instance outside the emulated machine got ready (emulated start times are not performance figures)
density-chart-none-ready-real = aucune instance hors de la machine émulée n’a été prête (les temps de démarrage émulés ne sont pas des chiffres de performance)
# en: no instance got ready
density-chart-none-ready = aucune instance n’a été prête
# en: Start latency vs N (start to ready; p50 solid, p99 dashed)
density-chart-start-title = Latence de démarrage selon N (du démarrage à « prête » ; p50 en trait plein, p99 en tirets)
# en: instances started (N, log scale)
density-chart-start-x = instances démarrées (N, échelle log)
# en: ms (log scale)
density-chart-start-y = ms (échelle log)
# en: anonymous
density-part-anonymous = anonyme
# en: page tables
density-part-page-tables = tables de pages
# en: kernel stacks
density-part-kernel-stacks = piles noyau
# en: slab, unreclaimable
density-part-slab-unreclaimable = slab, non récupérable
# en: slab, reclaimable
density-part-slab-reclaimable = slab, récupérable
# en: per-CPU
density-part-per-CPU = par CPU
# en: shared memory
density-part-shared-memory = mémoire partagée
# en: file pages
density-part-file-pages = pages de fichiers
# en: { $backend } ran inside the emulated machine, which does not report the VMM's { $key } back to this host; a run on hardware KVM records it
why-no-fact-emulated = { $backend } a tourné dans la machine émulée, qui ne renvoie pas à cet hôte le { $key } du VMM ; une exécution sur KVM matériel l’enregistre

## The report of a density run (`isolab report DENSITY_RUN`, `isolab density`)

# en: isolab density run { $run }
density-report-title = exécution de densité isolab { $run }
# en: Density run { $run } on { $host } (kernel { $kernel }, { $cores } cores, { $memory }), { $started }: { $status }
density-report-run-line = Exécution de densité { $run } sur { $host } (noyau { $kernel }, { $cores } cœurs, { $memory }), { $started } : { $status }
# en: idle
density-report-idle = inactives
# en: working set { $size }
density-report-working-set = ensemble de travail de { $size }
# en: Instances: { $ws }; N = { $counts }; { $rounds } each; { $parallel } at a time; { $beside } beside N
density-report-instances = Instances : { $ws } ; N = { $counts } ; { $rounds } chacun ; { $parallel } à la fois ; { $beside } à côté des N
# en: Memory per instance, one meter for every backend (the host's MemAvailable drop against N; PSS beside it; fit with { $headroom } headroom):
density-report-memory-intro = Mémoire par instance, le même compteur pour tous les environnements (la baisse de MemAvailable de l’hôte en fonction de N ; la PSS à côté ; instances qui tiennent avec une marge de { $headroom }) :
# en: Per N (medians over the rounds [interval]; the cgroup view is what the containers' memory cgroups charge, not a footprint):
density-report-per-n-intro = Par N (médianes sur les tours [intervalle] ; la vue du groupe de contrôle est ce que les groupes de contrôle mémoire des conteneurs facturent, pas une empreinte) :
# en: Method:
density-report-method-label = Méthode :
# en: Memory per instance: one meter for every backend
density-report-memory-heading = Mémoire par instance : le même compteur pour tous les environnements
# en: The marginal memory is the slope of the host's MemAvailable drop against the number of instances; PSS is beside it; instances that fit keep { $headroom } of the host's memory free.
density-report-memory-lead = La mémoire marginale est la pente de la baisse de MemAvailable de l’hôte en fonction du nombre d’instances ; la PSS est à côté ; les instances qui tiennent laissent libres { $headroom } de la mémoire de l’hôte.
# en: Per N
density-report-per-n-heading = Par N
# en: Method
density-report-method-heading = Méthode
# en: Chart not drawn: { $why }
density-report-chart-not-drawn = Graphique non tracé : { $why }
# en: backend
density-col-backend = environnement
# en: marginal MiB/instance [95% CI]
density-col-marginal = Mio marginaux/instance [IC à 95 %]
# en: fixed MiB
density-col-fixed = Mio fixes
# en: PSS MiB/instance [95% CI]
density-col-pss = PSS Mio/instance [IC à 95 %]
# en: instances that fit [CI]
density-col-fit = instances qui tiennent [IC]
# en: rounds
density-col-rounds = tours
# en: N
density-col-n = N
# en: drop/N MiB
density-col-drop = baisse/N Mio
# en: others' anon/N
density-col-others = anon. des autres/N
# en: PSS/N MiB
density-col-pss-n = PSS/N Mio
# en: cgroup view/N MiB
density-col-cgroup = vue du groupe de contrôle/N Mio
# en: start p50 ms
density-col-start-p50 = démarrage p50 ms
# en: p90
density-col-p90 = p90
# en: p99
density-col-p99 = p99
# en: max
density-col-max = max.
# en: last
density-col-last = dernière
# en: one more p50 ms
density-col-beside = une de plus p50 ms
# en: teardown ms
density-col-teardown = arrêt ms
# en: memory back ms
density-col-recovery = mémoire revenue ms
# en: { $points } at { $counts } N
density-rounds-at = { $points } sur { $counts } N
# en: { $ms } ({ $n } not back)
density-not-back-some = { $ms } ({ $n } pas revenue)
# en: not back ({ $n })
density-not-back = pas revenue ({ $n })
# en: { $backend } at N = { $n }: what grew in /proc/meminfo per instance (MiB): { $parts }.
density-note-components = { $backend } à N = { $n } : ce qui a augmenté dans /proc/meminfo par instance (Mio) : { $parts }.
# en: container start phases at N = { $n } (median ms after its start began): { $phases }.
density-note-phases = phases de démarrage du conteneur à N = { $n } (médiane en ms depuis le début de son démarrage) : { $phases }.
# en: { $backend } at N = { $n }: per VM (MiB, PSS of its VMM process, median [95% CI]): guest RAM touched { $guest }, VMM overhead { $vmm }{ $inside }.
density-note-vm = { $backend } à N = { $n } : par VM (Mio, PSS de son processus VMM, médiane [IC à 95 %]) : RAM de l’invité touchée { $guest }, surcoût du VMM { $vmm }{ $inside }.
# en: ; inside the guest, its kernel and agent use { $used } of the { $total } its kernel manages (MemTotal − MemAvailable, and MemTotal)
density-note-vm-inside =  ; dans l’invité, son noyau et l’agent utilisent { $used } des { $total } que gère son noyau (MemTotal − MemAvailable, et MemTotal)
# en: { $backend } at N = { $n }: KSM merged { $pages } pages into { $into } (pages_sharing and pages_shared grown during the round, medians over { $rounds }): { $saved } saved, settled after { $waited }{ $unsettled }.
density-note-ksm = { $backend } à N = { $n } : KSM a fusionné { $pages } pages en { $into } (croissance de pages_sharing et de pages_shared pendant le tour, médianes sur { $rounds }) : { $saved } économisés, stabilisé après { $waited }{ $unsettled }.
# en: { $n -> [one] { " " }({ $n } round did not settle within --ksm-settle) *[other] { " " }({ $n } rounds did not settle within --ksm-settle)
density-note-ksm-unsettled = { $n ->
    [one] { " " }({ $n } tour ne s’est pas stabilisé dans le délai --ksm-settle)
   *[other] { " " }({ $n } tours ne se sont pas stabilisés dans le délai --ksm-settle)
}
# en: The host's other processes moved their anonymous memory by more than a quarter of the drop meanwhile ({ $which }): those drops measure the rest of the host as much as the instances; their intervals say how much. Trust the largest N and PSS most, or measure on a quieter host.
density-note-noisy = Les autres processus de l’hôte ont fait varier leur mémoire anonyme de plus d’un quart de la baisse pendant ce temps ({ $which }) : ces baisses mesurent le reste de l’hôte autant que les instances ; leurs intervalles disent de combien. Fiez-vous d’abord au plus grand N et à la PSS, ou mesurez sur un hôte plus calme.
# en: { $backend } stopped at N = { $n } ({ $kind }): { $why }
density-note-stopped = { $backend } s’est arrêté à N = { $n } ({ $kind }) : { $why }
# en: refused: the estimate would eat the headroom
density-stop-refused = refusé : l’estimation aurait entamé la marge
# en: MemAvailable fell below the floor
density-stop-floor = MemAvailable est passé sous le plancher
# en: a host limit
density-stop-limit = une limite de l’hôte
# en: instances did not start
density-stop-failed = des instances n’ont pas démarré
# en: interrupted
density-stop-interrupted = interrompu
# en: unavailable here
density-stop-unavailable = indisponible ici
# en: { $n -> [one] { $n } round left something behind after the teardown (see { $file }); run `isolab doctor --clean`. *[other] { $n } rounds left something behind after the teardown (see { $file }); run `isolab doctor --clean`.
density-note-left-behind = { $n ->
    [one] { $n } tour a laissé quelque chose derrière lui après l’arrêt (voir { $file }) ; lancez `isolab doctor --clean`.
   *[other] { $n } tours ont laissé quelque chose derrière eux après l’arrêt (voir { $file }) ; lancez `isolab doctor --clean`.
}
# en: { $backend } ran inside the emulated machine (QEMU TCG with AMD-V, --vm-in-emulator): its memory figures are what the guests and VMM processes did and are valid, measured against the emulated machine's memory (so are its "instances that fit"); its times are emulated, never performance figures.
density-note-emulated = { $backend } a tourné dans la machine émulée (QEMU TCG avec AMD-V, --vm-in-emulator) : ses chiffres de mémoire sont ce qu’ont fait les invités et les processus VMM et sont valables, mesurés par rapport à la mémoire de la machine émulée (de même que ses « instances qui tiennent ») ; ses temps sont émulés, jamais des chiffres de performance.
# en: The last round's line was torn (the run was killed while writing it) and is left out.
density-note-torn = La ligne du dernier tour était tronquée (l’exécution a été tuée pendant son écriture) et est laissée de côté.
# en: { $backend } p50
density-chart-p50 = { $backend } p50
# en: { $backend } p99
density-chart-p99 = { $backend } p99
