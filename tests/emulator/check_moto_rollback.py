"""The emulator's transactions are all-or-nothing (scripts/moto_server.py
replaces moto's whole-table backup by item-level rollback). Run by
scripts/test.sh against the moto it started: python3 check_moto_rollback.py URL
"""
import sys

import boto3
import botocore

URL = sys.argv[1]
c = boto3.client("dynamodb", endpoint_url=URL, region_name="eu-west-2", aws_access_key_id="t", aws_secret_access_key="t")
t = "rollback-check"
try: c.delete_table(TableName=t)
except Exception: pass
c.create_table(TableName=t, KeySchema=[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}], AttributeDefinitions=[{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"sk","AttributeType":"S"}], BillingMode="PAY_PER_REQUEST")
c.put_item(TableName=t, Item={"pk":{"S":"a"},"sk":{"S":"1"},"v":{"N":"1"}})
try:
    c.transact_write_items(TransactItems=[
        {"Put":{"TableName":t,"Item":{"pk":{"S":"b"},"sk":{"S":"1"}}}},
        {"Update":{"TableName":t,"Key":{"pk":{"S":"a"},"sk":{"S":"1"}},"UpdateExpression":"SET v = :n","ExpressionAttributeValues":{":n":{"N":"2"}}}},
        {"ConditionCheck":{"TableName":t,"Key":{"pk":{"S":"c"},"sk":{"S":"1"}},"ConditionExpression":"attribute_exists(pk)"}},
    ])
    raise SystemExit("transaction should have failed")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "TransactionCanceledException", e
assert "Item" not in c.get_item(TableName=t, Key={"pk":{"S":"b"},"sk":{"S":"1"}}), "put not rolled back"
assert c.get_item(TableName=t, Key={"pk":{"S":"a"},"sk":{"S":"1"}})["Item"]["v"]["N"] == "1", "update not rolled back"
c.transact_write_items(TransactItems=[{"Put":{"TableName":t,"Item":{"pk":{"S":"b"},"sk":{"S":"1"}}}}])
assert "Item" in c.get_item(TableName=t, Key={"pk":{"S":"b"},"sk":{"S":"1"}})
c.delete_table(TableName=t)
print("moto: a failed transaction leaves nothing behind; a good one applies")
