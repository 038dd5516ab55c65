Feature: Rejecting bad records
  A record that does not fit the wire format, or that breaks a rule of the ledger, is
  rejected on its own, with its line, the field at fault and a plain message. It
  writes nothing, and the valid records around it still go in.

  Background:
    Given the authorities are registered
    And these records are in the ledger:
      | citizen   | authority          | record              | reference | on         | amount | acts on |
      | Wang Fang | the civil registry | enrolment           | CR-1      | 2008-03-07 |        |         |
      | Li Wei    | the civil registry | enrolment           | CR-2      | 2003-11-30 |        |         |
      | Wang Fang | the traffic police | traffic fine        | TP-1      | 2025-01-10 | 200.00 |         |
      | Li Wei    | the traffic police | traffic fine        | TP-LI     | 2025-01-12 | 150.00 |         |
      | Wang Fang | the tax bureau     | tax arrears         | TX-1      | 2025-01-15 | 300.00 |         |
      | Wang Fang | the tax bureau     | settlement          | TX-2      | 2025-03-01 | 300.00 | TX-1    |
      | Wang Fang | the people's court | criminal conviction | CV-1      | 2024-11-05 |        |         |

  Scenario Outline: A bad record is rejected alone while the records around it go in
    When the ledger receives these records:
      | citizen   | authority          | record       | reference | on         | amount   | acts on   | remark   |
      | Wang Fang | the traffic police | traffic fine | OK-1      | 2025-06-01 | 1.00     |           |          |
      | <citizen> | <authority>        | <record>     | BAD-1     | <on>       | <amount> | <acts on> | <remark> |
      | Wang Fang | the traffic police | traffic fine | OK-2      | 2025-06-02 | 2.00     |           |          |
    Then line 2 is the only one rejected, for its <field>: "<message>"
    And 2 records are appended
    And the history of Wang Fang has gained OK-1 and OK-2 and nothing else
    And the history of Li Wei is unchanged
    And the history of Zhang Min is unchanged

    Examples:
      | bad record                         | citizen            | authority          | record       | on         | amount | acts on | remark       | field       | message                                                      |
      | a wrong check character            | 110105199003071246 | the traffic police | traffic fine | 2025-06-01 | 5.00   |         |              | citizen     | check character should be 7                                  |
      | a date after today                 | Wang Fang          | the traffic police | traffic fine | 2026-03-02 | 5.00   |         |              | occurred_on | is after today (2026-03-01)                                  |
      | a date before the citizen's birth  | Wang Fang          | the traffic police | traffic fine | 1989-12-31 | 5.00   |         |              | occurred_on | is before the citizen's birth date 1990-03-07                |
      | an unregistered authority          | Wang Fang          | the secret police  | traffic fine | 2025-06-01 | 5.00   |         |              | authority   | secret-police is not a registered authority                  |
      | a kind the authority may not issue | Wang Fang          | the traffic police | tax arrears  | 2025-06-01 | 5.00   |         |              | authority   | traffic-police may not issue infraction.recorded:tax_arrears |
      | a citizen never enrolled           | Zhang Min          | the traffic police | traffic fine | 2025-06-01 | 5.00   |         |              | citizen     | is not enrolled                                              |
      | a second enrolment                 | Wang Fang          | the civil registry | enrolment    | 2008-03-07 |        |         |              | citizen     | is already enrolled                                          |
      | a target of another citizen        | Wang Fang          | the traffic police | settlement   | 2025-06-01 | 150.00 | TP-LI   |              | target      | traffic-police/TP-LI is a record of another citizen          |
      | a target that does not exist       | Wang Fang          | the traffic police | settlement   | 2025-06-01 | 150.00 | TP-404  |              | target      | traffic-police/TP-404 is not a record of this citizen        |
      | settling twice                     | Wang Fang          | the tax bureau     | settlement   | 2025-06-01 | 300.00 | TX-1    |              | target      | tax-bureau/TX-1 was already settled on 2025-03-01            |
      | settling a criminal conviction     | Wang Fang          | the people's court | settlement   | 2025-06-01 | 1.00   | CV-1    |              | target      | a criminal_conviction cannot be settled                      |
      | settling before the fine           | Wang Fang          | the traffic police | settlement   | 2025-01-09 | 200.00 | TP-1    |              | occurred_on | is before the target's date 2025-01-10                       |
      | an unknown field                   | Wang Fang          | the traffic police | traffic fine | 2025-06-01 | 5.00   |         | paid in cash | remark      | is not a field of infraction.recorded records                |
      | an over-precise amount             | Wang Fang          | the traffic police | traffic fine | 2025-06-01 | 5.001  |         |              | amount      | must have at most 2 decimal places                           |
      | a negative amount                  | Wang Fang          | the traffic police | traffic fine | 2025-06-01 | -5.00  |         |              | amount      | must not be negative                                         |
      | a fine without an amount           | Wang Fang          | the traffic police | traffic fine | 2025-06-01 |        |         |              | amount      | is required for traffic_fine                                 |

  Scenario: A feed holding nothing but a bad record writes nothing
    When the traffic police record a fine of 200.00 for Zhang Min on 2025-01-10 under reference TP-9
    Then line 1 is the only one rejected, for its citizen: "is not enrolled"
    And nothing is written to the ledger

  Scenario: A record about a citizen is rejected when her enrolment comes later in the feed
    When the ledger receives these records:
      | citizen   | authority          | record       | reference | on         | amount |
      | Zhang Min | the traffic police | traffic fine | TP-9      | 2025-01-10 | 200.00 |
      | Zhang Min | the civil registry | enrolment    | CR-3      | 2018-02-28 |        |
    Then line 1 is the only one rejected, for its citizen: "is not enrolled"
    And 1 record is appended
    And the history of Zhang Min is:
      | record    | reference |
      | enrolment | CR-3      |

  Scenario: A fine settled twice in the same feed is settled once
    When the ledger receives these records:
      | citizen   | authority          | record       | reference | on         | amount | acts on |
      | Wang Fang | the traffic police | traffic fine | TP-7      | 2025-05-01 | 80.00  |         |
      | Wang Fang | the traffic police | settlement   | TP-8      | 2025-05-02 | 80.00  | TP-7    |
      | Wang Fang | the traffic police | settlement   | TP-9      | 2025-05-03 | 80.00  | TP-7    |
    Then line 3 is the only one rejected, for its target: "traffic-police/TP-7 was already settled on 2025-05-02"
    And 2 records are appended
    And the history of Wang Fang has gained TP-7 and TP-8 and nothing else

  Scenario: An authority may issue a record only from the day it was entitled to
    Given the new bank is registered to record tax paid on time from 2025-01-01
    When the ledger receives these records:
      | citizen   | authority    | record           | reference | on         | amount |
      | Wang Fang | the new bank | tax paid on time | NB-1      | 2024-12-31 | 10.00  |
      | Wang Fang | the new bank | tax paid on time | NB-2      | 2025-01-01 | 10.00  |
    Then line 1 is the only one rejected, for its authority: "new-bank may issue payment.recorded:tax_paid_on_time only from 2025-01-01"
    And 1 record is appended
    And the history of Wang Fang has gained NB-2 and nothing else

  Scenario: A record dated tomorrow in China Standard Time is rejected
    Given it is 2026-03-01T15:59:00Z
    When the traffic police record a fine of 200.00 for Wang Fang on 2026-03-02 under reference TP-9
    Then line 1 is the only one rejected, for its occurred_on: "is after today (2026-03-01)"
    And nothing is written to the ledger
