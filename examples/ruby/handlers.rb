# frozen_string_literal: true

# The handlers of this app's workers, loaded by the reactis:setup task
# (Rakefile). A Rails app would register them in an initializer and extend
# the task instead: task "reactis:setup" => :environment.

require "reactis"
require "json"

# rake reactis:work QUEUE=sms: each job's payload is the JSON a producer
# scheduled (producer.rb). Returning acks the job; raising retries it with
# exponential backoff, and after max_attempts it goes to the dead letters.
Reactis.handle("sms") do |job|
  sms = JSON.parse(job.payload)
  Reactis.logger.info { "sending #{sms['text'].inspect} to #{sms['to']} (attempt #{job.attempt}, #{job.lag.round(3)} s late)" }
  # SmsProvider.deliver(sms["to"], sms["text"])
end

# Conversation timeouts that must be on time: producers schedule one per
# conversation with id: "conv:CHANNEL:USER" and reschedule it on every
# message; when it comes due, this closes the conversation.
Reactis.handle("conversation-timeouts") do |job|
  _, channel, user = job.id.split(":", 3)
  Reactis.logger.info { "closing the conversation of #{user} in #{channel}" }
end

# rake reactis:listen: keyspace notifications as hints.
Reactis.on_pattern("__keyevent@*__:expired") do |msg|
  if msg.gap?
    Reactis.logger.warn { "reconnected; expirations in the last #{msg.gap_duration} s were missed" }
  else
    Reactis.logger.info { "expired: #{msg.key_event.key}" }
  end
end
