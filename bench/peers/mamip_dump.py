"""Build one `get-account-authorization-details` dump holding every MAMIP policy as a
customer-managed policy attached to one role, so that Tenet, Parliament and Cloudsplaining
read the same 1,390 documents from the same kind of input. Usage: mamip_dump.py DIR OUT."""
import json
import os
import sys

src, out = sys.argv[1], sys.argv[2]
policies, attached = [], []
for name in sorted(os.listdir(src)):
    with open(os.path.join(src, name), encoding="utf-8") as f:
        text = f.read()
    if not text.strip():
        continue  # two MAMIP files are empty; every tool skips them
    version = json.loads(text)["PolicyVersion"]
    arn = f"arn:aws:iam::111122223333:policy/{name}"
    policies.append({
        "PolicyName": name, "PolicyId": "ANPA" + name.upper()[:16], "Arn": arn, "Path": "/",
        "DefaultVersionId": version.get("VersionId", "v1"), "AttachmentCount": 1,
        "PermissionsBoundaryUsageCount": 0, "IsAttachable": True,
        "CreateDate": "2020-01-01T00:00:00Z", "UpdateDate": "2020-01-01T00:00:00Z",
        "PolicyVersionList": [{"Document": version["Document"], "VersionId": version.get("VersionId", "v1"),
                               "IsDefaultVersion": True, "CreateDate": "2020-01-01T00:00:00Z"}],
    })
    attached.append({"PolicyName": name, "PolicyArn": arn})
dump = {
    "UserDetailList": [], "GroupDetailList": [],
    "RoleDetailList": [{
        "Path": "/", "RoleName": "mamip-all", "RoleId": "AROAMAMIPALL", "Arn": "arn:aws:iam::111122223333:role/mamip-all",
        "CreateDate": "2020-01-01T00:00:00Z",
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "InstanceProfileList": [], "RolePolicyList": [], "AttachedManagedPolicies": attached, "Tags": [],
    }],
    "Policies": policies,
}
with open(out, "w", encoding="utf-8") as f:
    json.dump(dump, f)
