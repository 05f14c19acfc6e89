# Template of the restore runbook (docs/operations.md, "Restore a Longhorn backup into the claim"),
# rendered by `python -m cdk8s_valkey runbook restore MANIFEST` (cdk8s_valkey/runbook.py): every
# @@name is a value read from the manifest. Each "## " line starts a block of the runbook.
## note the claim's volume and size (the later steps need them after the claim is gone)
OLD_VOLUME=$(kubectl -n @ns get pvc @claim -o jsonpath='{.spec.volumeName}')
SIZE=$(kubectl -n @ns get pvc @claim -o jsonpath='{.spec.resources.requests.storage}')
echo "@claim: volume $OLD_VOLUME, $SIZE"
## 2. stop Valkey
kubectl -n @ns scale statefulset @sts --replicas=0
kubectl -n @ns wait --for=delete pod/@pod --timeout=120s
## 3. the backups of the current volume, newest last
kubectl -n longhorn-system get backups.longhorn.io -l backup-volume="$OLD_VOLUME" --sort-by=.status.backupCreatedAt \
  -o custom-columns=NAME:.metadata.name,CREATED:.status.backupCreatedAt,STATE:.status.state,SIZE:.status.size
## 3. restore the chosen backup into a new Longhorn volume
BACKUP=backup-0123456789abcdef   # the NAME of the chosen backup, state Completed
BACKUP_URL=$(kubectl -n longhorn-system get backups.longhorn.io "$BACKUP" -o jsonpath='{.status.url}')
echo "$OLD_VOLUME <- $BACKUP_URL"
kubectl create -f - <<EOF
apiVersion: longhorn.io/v1beta2
kind: Volume
metadata:
  name: @restored
  namespace: longhorn-system
spec:
  fromBackup: "$BACKUP_URL"
  frontend: blockdev
  dataEngine: v1
EOF
kubectl -n longhorn-system wait volumes.longhorn.io/@restored --for=jsonpath='{.status.restoreRequired}'=false --timeout=60m
kubectl -n longhorn-system get volumes.longhorn.io @restored -o jsonpath='{.status.state} {.spec.size}{"\n"}'
## 4. keep the old volume, then delete the old claim
kubectl patch pv "$OLD_VOLUME" -p '{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}'
kubectl -n @ns delete pvc @claim --wait=true
## 5. a PersistentVolume for the restored volume, reserved for the claim
kubectl create -f - <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: @restored
spec:
  capacity:
    storage: $SIZE
  accessModes: [ReadWriteOnce]
  volumeMode: Filesystem
  persistentVolumeReclaimPolicy: Retain
  storageClassName: @class
  claimRef:
    namespace: @ns
    name: @claim
  csi:
    driver: driver.longhorn.io
    fsType: ext4
    volumeHandle: @restored
EOF
## 6. the claim, with its exact name, bound to that volume
kubectl create -f - <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: @claim
  namespace: @ns@claim_labels
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: @class
  volumeName: @restored
  resources:
    requests:
      storage: $SIZE
EOF
kubectl -n @ns wait pvc/@claim --for=jsonpath='{.status.phase}'=Bound --timeout=120s
## 7. check the AOF before Valkey starts, in a one-off pod on the claim
kubectl -n @ns create -f - <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: @repair
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    runAsUser: @uid
    runAsGroup: @gid
    runAsNonRoot: true
    fsGroup: @fsgroup
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: repair
      image: @image
      command: ["sleep", "3600"]
      securityContext:
        allowPrivilegeEscalation: false
        capabilities:
          drop: [ALL]
      volumeMounts:
        - name: data
          mountPath: /data
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: @claim
EOF
kubectl -n @ns wait pod/@repair --for=condition=Ready --timeout=300s
kubectl -n @ns exec @repair -- ls -l /data/appendonlydir
kubectl -n @ns exec @repair -- valkey-check-aof /data/appendonlydir/appendonly.aof.manifest
## 7. remove the repair pod
kubectl -n @ns delete pod @repair --wait=true
## 8. start Valkey (then resume GitOps)
kubectl -n @ns scale statefulset @sts --replicas=1
kubectl -n @ns wait pod/@pod --for=condition=Ready --timeout=600s
## 9. verify
kubectl -n @ns logs @pod -c valkey | grep -E 'DB loaded from|Truncating the AOF|aof-load-truncated|Ready to accept'
kubectl -n @ns exec @pod -c valkey -- valkey-cli DBSIZE
kubectl -n @ns exec @pod -c valkey -- valkey-cli INFO persistence | grep -E '^(loading|aof_enabled|aof_last_write_status|aof_last_bgrewrite_status):'
kubectl -n @ns get pvc @claim --show-labels
## once satisfied: delete the old volume
kubectl delete pv "$OLD_VOLUME"
kubectl -n longhorn-system delete volumes.longhorn.io "$OLD_VOLUME"
